//! String commands.

use bytes::Bytes;

use super::{CommandSpec, Ctx, errors, flags};
use crate::resp::Reply;
use crate::store::Value;

pub(super) const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "get",
    arity: 2,
    flags: flags::READONLY | flags::FAST,
    first_key: 1,
    last_key: 1,
    step: 1,
    run: get,
}];

fn get(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> Reply {
    match ctx.store.get(ctx.db, &argv[1], ctx.now_ms) {
        None => Reply::Nil,
        Some(item) => match &item.value {
            Value::String(s) => Reply::Bulk(s.clone()),
            _ => Reply::error(errors::WRONGTYPE),
        },
    }
}
