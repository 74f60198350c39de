//! Backup targets: one body of checks run on a local folder, memory, and a real S3-compatible
//! server (`s3s-fs` on loopback, see `tests/support/s3.rs`), plus what only S3 can show (objects
//! really stored under the prefix, multipart parts discarded on abort, credentials checked).

mod support;

use bytes::Bytes;
use futures::TryStreamExt;
use keeper::Error;
use keeper::backup::target::{PART_SIZE, Target};
use support::s3::{self, S3Server};

/// Varied bytes (xorshift), so a misplaced or repeated part changes the content.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn names(target: &Target, under: &str) -> Vec<String> {
    let list = target.list(under).await.unwrap();
    list.into_iter().map(|o| o.name).collect()
}

/// Every operation, on an empty target.
async fn exercise(target: &Target) {
    assert!(target.list("").await.unwrap().is_empty());
    assert_eq!(target.head("a.json").await.unwrap(), None);

    target
        .put("a.json", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    target
        .put("b.json", Bytes::from_static(b"[1]"))
        .await
        .unwrap();
    let data = Bytes::from(payload(100_000, 1));
    target
        .put("incomplete/c.rdb.zst", data.clone())
        .await
        .unwrap();
    target
        .put("incomplete-not/d.json", Bytes::from_static(b"d"))
        .await
        .unwrap();

    assert_eq!(target.get("a.json").await.unwrap(), &b"{}"[..]);
    assert_eq!(target.get("incomplete/c.rdb.zst").await.unwrap(), data);
    let info = target.head("b.json").await.unwrap().unwrap();
    assert_eq!((info.name.as_str(), info.size), ("b.json", 3));
    let age = chrono::Utc::now() - info.last_modified;
    assert!(
        age.num_seconds().abs() < 60,
        "last_modified {}",
        info.last_modified
    );

    let all = target.list("").await.unwrap();
    let listed: Vec<(&str, u64)> = all.iter().map(|o| (o.name.as_str(), o.size)).collect();
    assert_eq!(
        listed,
        [
            ("a.json", 2),
            ("b.json", 3),
            ("incomplete-not/d.json", 1),
            ("incomplete/c.rdb.zst", 100_000),
        ]
    );
    // A sub-prefix matches whole segments only.
    assert_eq!(names(target, "incomplete").await, ["incomplete/c.rdb.zst"]);
    assert!(names(target, "nothing").await.is_empty());

    // Put replaces.
    target
        .put("a.json", Bytes::from_static(b"{\"x\":1}"))
        .await
        .unwrap();
    assert_eq!(target.get("a.json").await.unwrap(), &b"{\"x\":1}"[..]);

    // Rename publishes, and replaces what was there.
    target
        .put("c.rdb.zst", Bytes::from_static(b"old"))
        .await
        .unwrap();
    target
        .rename("incomplete/c.rdb.zst", "c.rdb.zst")
        .await
        .unwrap();
    assert_eq!(target.head("incomplete/c.rdb.zst").await.unwrap(), None);
    assert_eq!(target.get("c.rdb.zst").await.unwrap(), data);
    assert!(names(target, "incomplete").await.is_empty());

    target.delete("b.json").await.unwrap();
    target.delete("b.json").await.unwrap(); // already gone: still Ok
    target.delete("never/was.json").await.unwrap();
    assert_eq!(target.head("b.json").await.unwrap(), None);
    assert_eq!(
        names(target, "").await,
        ["a.json", "c.rdb.zst", "incomplete-not/d.json"]
    );

    let err = target.get("b.json").await.unwrap_err();
    match &err {
        Error::Target {
            target: url,
            op,
            object,
            ..
        } => assert_eq!(
            (url.as_str(), *op, object.as_str()),
            (target.url(), "get", "b.json")
        ),
        other => panic!("{other}"),
    }
    let err = target.rename("b.json", "e.json").await.unwrap_err();
    assert!(matches!(err, Error::Target { op: "rename", .. }), "{err}");
}

/// A multipart upload of more than two parts, read back whole and streamed; an aborted upload
/// leaves nothing. Expects an empty target.
async fn multipart(target: &Target) {
    let data = payload(2 * PART_SIZE + 12_345, 7);
    let mut upload = target.upload("incomplete/big.rdb.zst").await.unwrap();
    // Uneven writes, so parts do not line up with writes.
    for chunk in data.chunks(1_000_003) {
        upload.write(chunk).await.unwrap();
    }
    assert_eq!(target.head("incomplete/big.rdb.zst").await.unwrap(), None);
    assert!(names(target, "").await.is_empty(), "visible before finish");
    assert_eq!(upload.finish().await.unwrap(), data.len() as u64);

    let info = target
        .head("incomplete/big.rdb.zst")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.size, data.len() as u64);
    assert!(target.get("incomplete/big.rdb.zst").await.unwrap() == data);
    let (size, stream) = target.get_stream("incomplete/big.rdb.zst").await.unwrap();
    assert_eq!(size, data.len() as u64);
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    assert!(chunks.concat() == data, "streamed bytes differ");

    // Publishing a multipart object by rename (S3: a server-side copy).
    target
        .rename("incomplete/big.rdb.zst", "big.rdb.zst")
        .await
        .unwrap();
    assert!(target.get("big.rdb.zst").await.unwrap() == data);

    let mut upload = target.upload("aborted.rdb.zst").await.unwrap();
    upload.write(&data[..PART_SIZE + 1]).await.unwrap();
    upload.abort().await.unwrap();
    assert_eq!(target.head("aborted.rdb.zst").await.unwrap(), None);

    // An empty upload is an empty object.
    let upload = target.upload("empty").await.unwrap();
    assert_eq!(upload.finish().await.unwrap(), 0);
    assert_eq!(target.get("empty").await.unwrap(), Bytes::new());

    assert_eq!(names(target, "").await, ["big.rdb.zst", "empty"]);
}

async fn refuses_bad_names(target: &Target) {
    for bad in [
        "", "/a", "a/", "a//b", "..", "../x", "a/../b", "./a", "a\\b", "a#1",
    ] {
        let err = target.put(bad, Bytes::new()).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{bad:?}: {err}");
        let err = target.upload(bad).await.err().unwrap();
        assert!(matches!(err, Error::InvalidArgument(_)), "{bad:?}: {err}");
    }
    let err = target.list("../x").await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

/// The whole body on fresh targets made by `make`.
async fn all(make: impl Fn(&str) -> Target) {
    exercise(&make("one")).await;
    multipart(&make("two")).await;
    refuses_bad_names(&make("three")).await;
}

#[tokio::test]
async fn memory() {
    all(|_| Target::parse("memory://").unwrap()).await;
}

#[tokio::test]
async fn local_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    all(|name| {
        let target = Target::parse(path.join(name).to_str().unwrap()).unwrap();
        assert!(target.is_local());
        target
    })
    .await;
    // The objects are files; an aborted upload left no staging file (`<name>#<n>`).
    assert_eq!(
        std::fs::read(dir.path().join("one/a.json")).unwrap(),
        b"{\"x\":1}"
    );
    let mut files: Vec<String> = std::fs::read_dir(dir.path().join("two"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["big.rdb.zst", "empty", "incomplete"]);
}

#[tokio::test]
async fn s3() {
    let server = S3Server::start();
    all(|prefix| Target::parse_with_env(&server.url(prefix), server.env()).unwrap()).await;

    // The objects are really on the server, under the prefix.
    assert_eq!(
        std::fs::read(server.object_path("one/a.json")).unwrap(),
        b"{\"x\":1}"
    );
    assert_eq!(
        std::fs::metadata(server.object_path("two/big.rdb.zst"))
            .unwrap()
            .len(),
        2 * PART_SIZE as u64 + 12_345
    );
    // The aborted upload's parts are gone from the server.
    let leftovers: Vec<String> = std::fs::read_dir(server.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.contains("upload"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The bucket's top sees every prefix, with names relative to it.
    let top = Target::parse_with_env(&server.url(""), server.env()).unwrap();
    assert_eq!(
        names(&top, "").await,
        [
            "one/a.json",
            "one/c.rdb.zst",
            "one/incomplete-not/d.json",
            "two/big.rdb.zst",
            "two/empty"
        ]
    );
    // A prefix that extends another's name as a string is a different folder.
    let sibling = Target::parse_with_env(&server.url("on"), server.env()).unwrap();
    assert!(names(&sibling, "").await.is_empty());
}

#[tokio::test]
async fn s3_wrong_credentials_are_errors_not_missing_objects() {
    let server = S3Server::start();
    let good = Target::parse_with_env(&server.url("p"), server.env()).unwrap();
    good.put("a.json", Bytes::from_static(b"{}")).await.unwrap();

    let env: Vec<(String, String)> = server
        .env()
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "AWS_SECRET_ACCESS_KEY" => (k, "wrong".to_owned()),
            _ => (k, v),
        })
        .collect();
    let bad = Target::parse_with_env(&server.url("p"), env).unwrap();
    let err = bad.head("a.json").await.unwrap_err();
    assert!(matches!(err, Error::Target { op: "head", .. }), "{err}");
    let err = bad.put("b.json", Bytes::new()).await.unwrap_err();
    assert!(matches!(err, Error::Target { op: "put", .. }), "{err}");
    let err = bad.list("").await.unwrap_err();
    assert!(matches!(err, Error::Target { op: "list", .. }), "{err}");
    assert_eq!(names(&good, "").await, ["a.json"]);
}

#[tokio::test]
async fn s3_missing_bucket_is_an_error() {
    // Listing is how the catalog starts, so a wrong bucket is noticed there. (s3s-fs, unlike
    // S3, accepts a put into a missing bucket, so only the listing is checked.)
    let server = S3Server::start();
    let target = Target::parse_with_env("s3://no-such-bucket/p", server.env()).unwrap();
    let err = target.list("").await.unwrap_err();
    assert!(
        matches!(&err, Error::Target { target, op: "list", .. } if target == "s3://no-such-bucket/p"),
        "{err}"
    );
}

#[tokio::test]
async fn s3_endpoint_from_the_variables_alone() {
    // AWS_ALLOW_HTTP is implied by an http:// endpoint; the region defaults to us-east-1.
    let server = S3Server::start();
    let env = [
        ("AWS_ENDPOINT_URL", server.endpoint()),
        ("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY.to_owned()),
    ];
    let target = Target::parse_with_env(&server.url("q"), env).unwrap();
    target.put("x", Bytes::from_static(b"1")).await.unwrap();
    assert_eq!(target.get("x").await.unwrap(), &b"1"[..]);
}
