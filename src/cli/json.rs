//! The JSON form of an entry printed by `keeper inspect --format json`:
//! `{"db":0,"key":…,"type":"…","expire_at_ms":N|null,"value":…}` where a byte string is a JSON
//! string when it is valid UTF-8 and `{"base64":"…"}` otherwise (fixtures/README.md).

use base64::Engine;
use serde_json::{Map, Value as Json, json};

use keeper::{Entry, HashField, Stream, StreamId, Value};

/// A byte string: text when it is UTF-8, else base64.
pub fn bytes(b: &[u8]) -> Json {
    match std::str::from_utf8(b) {
        Ok(text) => Json::String(text.to_owned()),
        Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(b) }),
    }
}

fn score(s: f64) -> Json {
    if s.is_infinite() {
        Json::String(if s > 0.0 { "inf" } else { "-inf" }.into())
    } else {
        serde_json::Number::from_f64(s).map_or(Json::Null, Json::Number)
    }
}

fn id(id: StreamId) -> Json {
    Json::String(id.to_string())
}

fn hash(fields: &[HashField]) -> Json {
    if fields.iter().all(|f| std::str::from_utf8(&f.field).is_ok()) {
        let mut map = Map::with_capacity(fields.len());
        for f in fields {
            map.insert(
                String::from_utf8_lossy(&f.field).into_owned(),
                bytes(&f.value),
            );
        }
        Json::Object(map)
    } else {
        Json::Array(
            fields
                .iter()
                .map(|f| json!([bytes(&f.field), bytes(&f.value)]))
                .collect(),
        )
    }
}

fn stream(s: &Stream) -> Json {
    let entries: Vec<Json> = s
        .entries
        .iter()
        .map(|e| {
            let fields: Vec<Json> = e
                .fields
                .iter()
                .map(|(f, v)| json!([bytes(f), bytes(v)]))
                .collect();
            json!({ "id": id(e.id), "fields": fields })
        })
        .collect();
    let groups: Vec<Json> = s
        .groups
        .iter()
        .map(|g| {
            let owner = |pid: StreamId| {
                g.consumers
                    .iter()
                    .find(|c| c.pending.contains(&pid))
                    .map_or(Json::Null, |c| bytes(&c.name))
            };
            let pending: Vec<Json> = g
                .pending
                .iter()
                .map(|p| {
                    json!({
                        "id": id(p.id),
                        "consumer": owner(p.id),
                        "delivery_time_ms": p.delivery_time_ms,
                        "delivery_count": p.delivery_count,
                    })
                })
                .collect();
            let consumers: Vec<Json> = g
                .consumers
                .iter()
                .map(|c| {
                    json!({
                        "name": bytes(&c.name),
                        "seen_time_ms": c.seen_time_ms,
                        "active_time_ms": c.active_time_ms,
                        "pending": c.pending.iter().map(|p| id(*p)).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({
                "name": bytes(&g.name),
                "last_id": id(g.last_id),
                "entries_read": g.entries_read,
                "pending": pending,
                "consumers": consumers,
            })
        })
        .collect();
    json!({
        "entries": entries,
        "length": s.entries.len(),
        "last_id": id(s.last_id),
        "first_id": id(s.first_id),
        "max_deleted_id": id(s.max_deleted_id),
        "entries_added": s.entries_added,
        "groups": groups,
    })
}

/// The JSON object of one entry.
pub fn entry(e: &Entry) -> Json {
    let value = match &e.value {
        Value::String(s) => bytes(s),
        Value::List(items) | Value::Set(items) => {
            Json::Array(items.iter().map(|i| bytes(i)).collect())
        }
        Value::SortedSet(items) => Json::Array(
            items
                .iter()
                .map(|(m, s)| json!([bytes(m), score(*s)]))
                .collect(),
        ),
        Value::Hash(fields) => hash(fields),
        Value::Stream(s) => stream(s),
        Value::Module(m) => json!({
            "module": m.type_name(),
            "encver": m.encoding_version(),
            "body": { "base64": base64::engine::general_purpose::STANDARD.encode(&m.body) },
        }),
    };
    let mut obj = json!({
        "db": e.db,
        "key": bytes(&e.key),
        "type": e.value.type_name(),
        "expire_at_ms": e.expire_at_ms,
        "value": value,
    });
    if let Value::Hash(fields) = &e.value
        && fields.iter().any(|f| f.expire_at_ms.is_some())
        && let Some(map) = obj.as_object_mut()
    {
        let ttls: Vec<Json> = fields
            .iter()
            .filter_map(|f| f.expire_at_ms.map(|at| json!([bytes(&f.field), at])))
            .collect();
        map.insert("field_expire_at_ms".into(), Json::Array(ttls));
    }
    obj
}
