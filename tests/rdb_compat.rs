//! RDB interoperability with real Redis: keeper reads what Redis wrote, and Redis loads what
//! keeper writes.
//!
//! The reference is always real Redis 7.0.15: the sidecar `.json` written next to each
//! `fixtures/redis-7.0/*.rdb` by `tools/gen-fixtures`, or a `redis-server` started on the file.
//! Both sides are compared in the canonical JSON-lines form (`support::canonical`).
//!
//! CLI contract under test:
//! - `keeper inspect --format json FILE`: one JSON line per key (and per function library).
//! - `keeper check-rdb FILE`: exit 0 with a summary, or exit 1 with `FILE: offset N: reason`.
//! - `keeper convert [--rdb-version N] IN OUT`: rewrite IN as RDB version N (default 10).
//!
//! Each test runs every fixture and then fails once, listing every fixture that failed.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use support::{
    RedisServer, canonical, compare, drop_expired, keeper, lines, now_ms, redis_check_rdb,
    repo_root,
};

/// Legacy files with module data: Redis 7.0 lacks the modules and refuses them.
const MODULE_FIXTURES: [&str; 2] = ["redis_40_with_module.rdb", "redis_60_with_module_aux.rdb"];
/// A legacy file damaged so that Redis refuses it.
const CORRUPT_ZIPLIST: &str = "corrupt_ziplist.rdb";
/// Holds empty collections: Redis loads it (skipping them) but `redis-check-rdb` refuses it.
const EMPTY_KEYS: &str = "corrupt_empty_keys.rdb";

// ---- fixtures -----------------------------------------------------------------------------

/// Every `*.rdb` under `dir`, recursively, sorted.
fn rdb_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let entries = fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("read_dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rdb") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// RDB files written by Redis 7.0.15, each with a `.json` sidecar.
fn redis70_fixtures() -> Vec<PathBuf> {
    rdb_files(&repo_root().join("fixtures/redis-7.0"))
}

/// Legacy RDB files (versions 1–9) that Redis 7.0 loads.
fn legacy_fixtures() -> Vec<PathBuf> {
    rdb_files(&repo_root().join("fixtures/legacy"))
        .into_iter()
        .filter(|p| {
            let name = file_name(p);
            !MODULE_FIXTURES.contains(&name) && name != CORRUPT_ZIPLIST
        })
        .collect()
}

/// Every fixture Redis 7.0 loads: the keeper output of these must load too.
fn loadable_fixtures() -> Vec<PathBuf> {
    let mut files = redis70_fixtures();
    files.extend(legacy_fixtures());
    files
}

fn legacy_file(name: &str) -> PathBuf {
    rdb_files(&repo_root().join("fixtures/legacy"))
        .into_iter()
        .find(|p| file_name(p) == name)
        .unwrap_or_else(|| panic!("fixture {name} not found under fixtures/legacy"))
}

/// Runs `check` on every file; fails once, listing every failure.
fn for_each_fixture(files: &[PathBuf], check: impl Fn(&Path) -> Result<(), String>) {
    assert!(
        !files.is_empty(),
        "no fixtures found (run tools/gen-fixtures?)"
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| check(f).err().map(|e| format!("{}: {e}", f.display())))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

// ---- keeper and redis ---------------------------------------------------------------------

fn describe(what: &str, out: &std::process::Output) -> String {
    format!(
        "{what} exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `keeper inspect --format json FILE`, as lines (not canonical).
fn inspect(path: &Path) -> Result<Vec<String>, String> {
    let out = keeper()
        .args(["inspect", "--format", "json"])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run keeper: {e}"))?;
    if !out.status.success() {
        return Err(describe("keeper inspect", &out));
    }
    Ok(lines(&out.stdout))
}

/// `keeper convert [--rdb-version N] IN OUT`.
fn convert(input: &Path, output: &Path, version: Option<u32>) -> Result<(), String> {
    let mut cmd = keeper();
    cmd.arg("convert");
    if let Some(v) = version {
        cmd.args(["--rdb-version", &v.to_string()]);
    }
    let out = cmd
        .arg(input)
        .arg(output)
        .output()
        .map_err(|e| format!("cannot run keeper: {e}"))?;
    if !out.status.success() {
        return Err(describe(
            &format!("keeper convert (version {version:?})"),
            &out,
        ));
    }
    Ok(())
}

/// The file starts with the magic of RDB `version`, e.g. `REDIS0010`.
fn check_magic(path: &Path, version: u32) -> Result<(), String> {
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let want = format!("REDIS{version:04}");
    if bytes.starts_with(want.as_bytes()) {
        Ok(())
    } else {
        let got = String::from_utf8_lossy(&bytes[..bytes.len().min(9)]).into_owned();
        Err(format!("expected magic {want}, file starts with {got:?}"))
    }
}

/// Canonical dataset of a real Redis 7.0 that loaded `rdb` as its dump file at startup.
fn loaded_by_redis(rdb: &Path) -> Result<Vec<String>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    fs::copy(rdb, dir.path().join("dump.rdb")).map_err(|e| e.to_string())?;
    let server = RedisServer::try_start(dir.path(), "dump.rdb")?;
    Ok(canonical(&server.dump()))
}

/// Whether `text` has `NAME: offset N: ` (N decimal) for a file called `name`.
fn has_offset_error(text: &str, name: &str) -> bool {
    let needle = format!("{name}: offset ");
    text.match_indices(&needle).any(|(at, m)| {
        let rest = &text[at + m.len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with(": ")
    })
}

// ---- (a) Redis 7.0 files read like their sidecars ------------------------------------------

#[test]
fn redis70_fixtures_read_like_their_sidecars() {
    for_each_fixture(&redis70_fixtures(), |rdb| {
        let sidecar = rdb.with_extension("json");
        let text =
            fs::read_to_string(&sidecar).map_err(|e| format!("{}: {e}", sidecar.display()))?;
        let expected = canonical(&lines(text.as_bytes()));
        compare(
            "sidecar (-) vs keeper inspect (+)",
            &expected,
            &canonical(&inspect(rdb)?),
        )
    });
}

// ---- (b) legacy files read like Redis loads them --------------------------------------------

#[test]
fn legacy_fixtures_read_like_redis_loads_them() {
    for_each_fixture(&legacy_fixtures(), |rdb| {
        let ours = inspect(rdb)?;
        // Redis drops keys that are already expired when it loads a file; keeper reports them.
        let ours = canonical(&drop_expired(&ours, now_ms()));
        compare(
            "redis-server (-) vs keeper inspect (+)",
            &loaded_by_redis(rdb)?,
            &ours,
        )
    });
}

// ---- (c) damaged files are refused with an offset -------------------------------------------

#[test]
fn corrupt_ziplist_is_refused_with_its_offset() {
    let path = legacy_file(CORRUPT_ZIPLIST);
    let out = keeper()
        .arg("check-rdb")
        .arg(&path)
        .output()
        .expect("run keeper");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        describe("keeper check-rdb", &out)
    );
    assert!(
        has_offset_error(&stderr, CORRUPT_ZIPLIST),
        "stderr lacks `{CORRUPT_ZIPLIST}: offset N: reason`:\n{stderr}"
    );
}

#[test]
fn check_rdb_accepts_every_valid_fixture() {
    let mut files = loadable_fixtures();
    files.retain(|p| file_name(p) != EMPTY_KEYS); // valid or not is a matter of opinion
    files.extend(MODULE_FIXTURES.iter().map(|n| legacy_file(n))); // redis-check-rdb accepts them
    for_each_fixture(&files, |rdb| {
        let out = keeper()
            .arg("check-rdb")
            .arg(rdb)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() && !out.stdout.is_empty() {
            Ok(())
        } else {
            Err(describe(
                "keeper check-rdb (want exit 0 and a summary)",
                &out,
            ))
        }
    });
}

// ---- (d) what keeper writes, Redis loads ----------------------------------------------------

#[test]
fn converted_files_load_in_redis() {
    for_each_fixture(&loadable_fixtures(), |rdb| {
        let expected = canonical(&drop_expired(&inspect(rdb)?, now_ms()));
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = dir.path().join("dump.rdb");
        convert(rdb, &out, None)?;
        check_magic(&out, 10)?;
        let (ok, report) = redis_check_rdb(&out);
        if !ok {
            return Err(format!(
                "redis-check-rdb refuses keeper's output:\n{report}"
            ));
        }
        let server = RedisServer::try_start(dir.path(), "dump.rdb")?;
        compare(
            "keeper inspect IN (-) vs redis-server on OUT (+)",
            &expected,
            &canonical(&server.dump()),
        )
    });
}

#[test]
fn converted_files_read_back_the_same_in_every_version() {
    for_each_fixture(&loadable_fixtures(), |rdb| {
        let expected = canonical(&inspect(rdb)?);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        for version in [10, 11, 12] {
            let out = dir.path().join(format!("v{version}.rdb"));
            convert(rdb, &out, Some(version))?;
            check_magic(&out, version)?;
            let actual = canonical(&inspect(&out)?);
            compare(
                &format!("inspect IN (-) vs OUT v{version} (+)"),
                &expected,
                &actual,
            )?;
        }
        Ok(())
    });
}

// ---- (e) module data is kept opaque ---------------------------------------------------------

#[test]
fn module_fixtures_are_read_and_round_trip() {
    let files: Vec<PathBuf> = MODULE_FIXTURES.iter().map(|n| legacy_file(n)).collect();
    for_each_fixture(&files, |rdb| {
        let expected = canonical(&inspect(rdb)?);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = dir.path().join("out.rdb");
        convert(rdb, &out, None)?;
        // redis-check-rdb skips module values and module aux it has no module for.
        let (ok, report) = redis_check_rdb(&out);
        if !ok {
            return Err(format!(
                "redis-check-rdb refuses keeper's output:\n{report}"
            ));
        }
        compare(
            "inspect IN (-) vs OUT (+)",
            &expected,
            &canonical(&inspect(&out)?),
        )
    });

    // rdb-tools (tests/parser_tests.py) reads key `foo` as a ReJSON-RL module value.
    let lines = inspect(&legacy_file("redis_40_with_module.rdb")).expect("inspect");
    let foo = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .find(|v| v["key"] == "foo")
        .unwrap_or_else(|| panic!("no key foo in:\n{}", lines.join("\n")));
    assert_eq!(foo["type"], "module", "{foo}");
    assert!(
        foo.to_string().contains("ReJSON-RL"),
        "module type name missing: {foo}"
    );
    let simple = lines
        .iter()
        .any(|l| l.contains(r#""key":"simplekey""#) && l.contains(r#""type":"string""#));
    assert!(
        simple,
        "string key simplekey missing:\n{}",
        lines.join("\n")
    );
}

// ---- the harness itself ---------------------------------------------------------------------

#[test]
fn redis_loads_fixtures_like_their_sidecars() {
    // Checks the fixtures and the harness (server, redis_dump.py, canonical) without keeper.
    for_each_fixture(&redis70_fixtures(), |rdb| {
        let text = fs::read_to_string(rdb.with_extension("json")).map_err(|e| e.to_string())?;
        let expected = canonical(&lines(text.as_bytes()));
        compare(
            "sidecar (-) vs redis-server (+)",
            &expected,
            &loaded_by_redis(rdb)?,
        )
    });
}

#[test]
fn redis_refusing_a_file_is_reported_with_its_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::copy(legacy_file(CORRUPT_ZIPLIST), dir.path().join("dump.rdb")).expect("copy");
    match RedisServer::try_start(dir.path(), "dump.rdb") {
        Ok(server) => panic!("redis-server loaded {CORRUPT_ZIPLIST}:\n{}", server.log()),
        Err(e) => assert!(e.contains("redis-server log"), "{e}"),
    }
}

#[test]
fn canonical_form_ignores_order_and_score_spelling() {
    let a = canonical(&[
        r#"{"db":0,"key":"z","type":"zset","expire_at_ms":null,"value":[["b",1],["a",1.0],["c","-inf"]]}"#,
        r#"{"db":0,"key":"h","type":"hash","expire_at_ms":null,"value":[["y","2"],["x","1"]]}"#,
        r#"{"db":0,"key":"s","type":"set","expire_at_ms":null,"value":["b",{"base64":"/w=="},"a",{"base64":"AA=="}]}"#,
        r##"{"function":"#!lua name=a"}"##,
    ]);
    let b = canonical(&[
        r##"{"function":"#!lua name=a"}"##,
        r#"{"db":0,"key":"h","type":"hash","expire_at_ms":null,"value":{"x":"1","y":"2"}}"#,
        r#"{"db":0,"key":"s","type":"set","expire_at_ms":null,"value":[{"base64":"AA=="},"a","b",{"base64":"/w=="}]}"#,
        r#"{"db":0,"key":"z","type":"zset","expire_at_ms":null,"value":[["c","-inf"],["a",1.0],["b",1.0]]}"#,
    ]);
    assert_eq!(a, b);
    assert!(a[0].starts_with(r#"{"function""#), "{a:?}");
    assert!(
        a[2].contains(r#"[{"base64":"AA=="},"a","b",{"base64":"/w=="}]"#),
        "{}",
        a[2]
    );
    assert!(
        a[3].contains(r#"[["c","-inf"],["a",1.0],["b",1.0]]"#),
        "{}",
        a[3]
    );
}

#[test]
fn canonical_form_keeps_real_differences() {
    let base = r#"{"db":0,"key":"l","type":"list","expire_at_ms":null,"value":["a","b"]}"#;
    let reordered = r#"{"db":0,"key":"l","type":"list","expire_at_ms":null,"value":["b","a"]}"#;
    let other_db = r#"{"db":1,"key":"l","type":"list","expire_at_ms":null,"value":["a","b"]}"#;
    assert_ne!(canonical(&[base]), canonical(&[reordered]));
    assert_ne!(canonical(&[base]), canonical(&[other_db]));
    assert!(compare("lists", &canonical(&[base]), &canonical(&[reordered])).is_err());
}

#[test]
fn sidecars_are_canonical_already() {
    // tools/redis_dump.py sorts what it prints; canonicalising must not reorder its lines.
    for json in fs::read_dir(repo_root().join("fixtures/redis-7.0")).expect("fixtures dir") {
        let path = json.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = fs::read_to_string(&path).expect("read sidecar");
            let raw = lines(text.as_bytes());
            let canon = canonical(&raw);
            let keys = |ls: &[String]| -> Vec<String> {
                ls.iter()
                    .map(|l| {
                        let v: serde_json::Value = serde_json::from_str(l).expect("JSON");
                        format!("{}|{}|{}", v["db"], v["key"], v["function"])
                    })
                    .collect()
            };
            assert_eq!(keys(&raw), keys(&canon), "{} is not sorted", path.display());
        }
    }
}

#[test]
fn drop_expired_removes_only_past_expiries() {
    let lines = [
        r#"{"db":0,"key":"old","type":"string","expire_at_ms":1000,"value":"v"}"#,
        r#"{"db":0,"key":"new","type":"string","expire_at_ms":4102444800123,"value":"v"}"#,
        r#"{"db":0,"key":"none","type":"string","expire_at_ms":null,"value":"v"}"#,
        r##"{"function":"#!lua name=f"}"##,
    ];
    let kept = drop_expired(&lines, 2000);
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(kept.iter().all(|l| !l.contains(r#""old""#)));
}

#[test]
fn offset_errors_are_recognised() {
    assert!(has_offset_error(
        "x/corrupt_ziplist.rdb: offset 123: bad ziplist",
        CORRUPT_ZIPLIST
    ));
    assert!(!has_offset_error(
        "corrupt_ziplist.rdb: offset : bad",
        CORRUPT_ZIPLIST
    ));
    assert!(!has_offset_error(
        "corrupt_ziplist.rdb: bad",
        CORRUPT_ZIPLIST
    ));
}

// ---- (f) `inspect --format resp | redis-cli --pipe` rebuilds the dataset --------------------

/// Consumers' seen/active times cannot be recreated by commands (XCLAIM stamps them with the
/// time it runs), so they are left out of the comparison; everything else must match.
fn without_consumer_times(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            if value["type"] == "stream"
                && let Some(groups) = value["value"]["groups"].as_array_mut()
            {
                for group in groups {
                    if let Some(consumers) = group["consumers"].as_array_mut() {
                        for consumer in consumers {
                            consumer["seen_time_ms"] = 0.into();
                            consumer["active_time_ms"] = 0.into();
                        }
                    }
                }
            }
            value.to_string()
        })
        .collect()
}

#[test]
fn resp_output_piped_into_redis_cli_rebuilds_the_dataset() {
    for_each_fixture(&redis70_fixtures(), |rdb| {
        let resp = keeper()
            .args(["inspect", "--format", "resp"])
            .arg(rdb)
            .output()
            .map_err(|e| e.to_string())?;
        if !resp.status.success() {
            return Err(describe("keeper inspect --format resp", &resp));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let server = RedisServer::try_start(dir.path(), "dump.rdb")?;
        let mut pipe = std::process::Command::new("redis-cli")
            .args(["-p", &server.port().to_string(), "--pipe"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("redis-cli: {e}"))?;
        {
            use std::io::Write;
            let mut stdin = pipe.stdin.take().ok_or("redis-cli stdin")?;
            stdin.write_all(&resp.stdout).map_err(|e| e.to_string())?;
        }
        let piped = pipe.wait_with_output().map_err(|e| e.to_string())?;
        let report = String::from_utf8_lossy(&piped.stdout);
        if !piped.status.success() || !report.contains("errors: 0") {
            return Err(format!(
                "redis-cli --pipe: {report}{}",
                describe("", &piped)
            ));
        }
        let sidecar = rdb.with_extension("json");
        let text =
            fs::read_to_string(&sidecar).map_err(|e| format!("{}: {e}", sidecar.display()))?;
        compare(
            "sidecar (-) vs rebuilt by redis-cli --pipe (+)",
            &without_consumer_times(&canonical(&lines(text.as_bytes()))),
            &without_consumer_times(&canonical(&server.dump())),
        )
    });
}
