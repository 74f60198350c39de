//! Typed access to the value at a key, shared by every command family: a family reads and
//! writes its own type, any other type is Redis's `WRONGTYPE` error, and a missing (or
//! expired) key is `Ok(None)`.
//!
//! Readers take the [`Ctx`]. Writers take the store, database and time separately, so that a
//! command can hold the value while it uses the rest of its context (the random source of
//! `SPOP`, the propagation of `XREADGROUP`).

use std::sync::Arc;

use bytes::Bytes;

use super::{Ctx, errors};
use crate::model::Stream;
use crate::resp::Reply;
use crate::store::{Elements, Members, SortedSet, Store, Value};

/// The fields of a hash value.
pub(super) use crate::store::Fields;

/// Redis's error for a key of another type.
pub(super) fn wrongtype() -> Reply {
    Reply::error(errors::WRONGTYPE)
}

/// Deletes `key` if it holds an empty list, hash, set or sorted set, which Redis never keeps
/// (an empty stream stays: it still carries its last ID and its groups).
pub(super) fn delete_if_empty(ctx: &mut Ctx<'_>, key: &[u8]) {
    let empty = match ctx
        .store
        .get(ctx.db, key, ctx.now_ms)
        .map(|item| &item.value)
    {
        Some(Value::List(list)) => list.is_empty(),
        Some(Value::Hash(fields)) => fields.is_empty(),
        Some(Value::Set(set)) => set.is_empty(),
        Some(Value::SortedSet(zset)) => zset.is_empty(),
        _ => false,
    };
    if empty {
        ctx.store.remove(ctx.db, key);
    }
}

/// Defines `$get` (the value of type `$variant` at a key, for reading) and `$get_mut` (the
/// same for writing).
macro_rules! typed_access {
    ($get:ident, $get_mut:ident, $variant:ident, $ty:ty, $what:literal) => {
        #[doc = concat!("The ", $what, " at `key`: `None` when missing, WRONGTYPE for another type.")]
        pub(super) fn $get<'a>(
            ctx: &'a mut Ctx<'_>,
            key: &[u8],
        ) -> Result<Option<&'a $ty>, Reply> {
            match ctx.store.get(ctx.db, key, ctx.now_ms).map(|item| &item.value) {
                None => Ok(None),
                Some(Value::$variant(value)) => Ok(Some(value)),
                Some(_) => Err(wrongtype()),
            }
        }

        #[doc = concat!("The ", $what, " at `key` for modification: `None` when missing, WRONGTYPE for another type.")]
        pub(super) fn $get_mut<'a>(
            store: &'a mut Store,
            db: usize,
            key: &[u8],
            now_ms: i64,
        ) -> Result<Option<&'a mut $ty>, Reply> {
            match store.get_mut(db, key, now_ms).map(|item| &mut item.value) {
                None => Ok(None),
                Some(Value::$variant(value)) => Ok(Some(value)),
                Some(_) => Err(wrongtype()),
            }
        }
    };
}

typed_access!(get_string, get_string_mut, String, Bytes, "string");
typed_access!(get_list, get_list_mut, List, Elements, "list");
typed_access!(get_hash, get_hash_mut, Hash, Fields, "hash");
typed_access!(get_set, get_set_mut, Set, Members, "set");
typed_access!(get_zset, get_zset_mut, SortedSet, SortedSet, "sorted set");
typed_access!(get_stream, get_stream_mut, Stream, Arc<Stream>, "stream");

#[cfg(test)]
mod tests {
    use super::super::tests::Harness;
    use super::*;

    #[test]
    fn typed_lookups_refuse_other_types() {
        let mut h = Harness::new();
        h.run("SET s v");
        h.run("RPUSH l a");
        let mut rng = super::super::Rng::new(0);
        let mut ctx = Ctx {
            store: &mut h.store,
            db: 0,
            now_ms: h.now_ms,
            rng: &mut rng,
            replaying: false,
            dirty: 0,
            propagate: None,
        };
        assert_eq!(get_string(&mut ctx, b"s"), Ok(Some(&Bytes::from("v"))));
        assert_eq!(get_string(&mut ctx, b"l"), Err(wrongtype()));
        assert_eq!(get_list(&mut ctx, b"nokey").map(|l| l.is_none()), Ok(true));
        assert_eq!(
            get_set(&mut ctx, b"s").map(|s| s.is_none()),
            Err(wrongtype())
        );
        let (now, store) = (ctx.now_ms, &mut *ctx.store);
        let list = get_list_mut(store, 0, b"l", now).ok().flatten();
        list.expect("the list").push_back(Bytes::from("b"));
        assert_eq!(
            get_list(&mut ctx, b"l").map(|l| l.map(|l| l.len())),
            Ok(Some(2))
        );
        assert_eq!(
            get_zset_mut(ctx.store, 0, b"l", now).map(|z| z.is_none()),
            Err(wrongtype())
        );
    }
}
