//! Model-based test of persistence: random sequences of writes, snapshots (saves), reloads,
//! crashes and injected faults, run on a `Store` persisted to the simulated disk, against a
//! `BTreeMap` model. After every reload the store must equal one of the states the disk may
//! hold: the last successfully saved state, or — after a save that failed — that state or the
//! one the failed save was writing (a failure after the rename may or may not have reached the
//! disk). Never a mix, never anything else.
//!
//! proptest prints the failing sequence (with the simulated disk's seed) and keeps it in
//! `tests/model.proptest-regressions`, so a failure replays exactly.

use std::collections::BTreeMap;
use std::path::Path;

use keeper::Bytes;
use keeper::storage::{CrashMode, FaultError, FaultPlan, SimStorage};
use keeper::store::{Store, Value, own};
use proptest::prelude::*;

const DUMP: &str = "data/dump.rdb";
const DATABASES: usize = 4;

/// What a key holds in the model: a string value and an optional absolute expiry (far in the
/// future, so nothing expires during the test).
type State = BTreeMap<(usize, Bytes), (Bytes, Option<i64>)>;

#[derive(Debug, Clone)]
enum Op {
    Set {
        db: usize,
        key: u8,
        value: u16,
        ttl: bool,
    },
    Del {
        db: usize,
        key: u8,
    },
    Save,
    /// A save whose Nth storage operation fails.
    FaultySave {
        nth: u64,
        no_space: bool,
    },
    Reload,
    Crash(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..DATABASES, any::<u8>(), any::<u16>(), any::<bool>())
            .prop_map(|(db, key, value, ttl)| Op::Set { db, key, value, ttl }),
        3 => (0..DATABASES, any::<u8>()).prop_map(|(db, key)| Op::Del { db, key }),
        2 => Just(Op::Save),
        2 => (1u64..12, any::<bool>()).prop_map(|(nth, no_space)| Op::FaultySave { nth, no_space }),
        1 => Just(Op::Reload),
        2 => (0u8..4).prop_map(Op::Crash),
    ]
}

fn key(k: u8) -> Bytes {
    own(format!("key:{k}").as_bytes())
}

fn state_of(store: &Store) -> State {
    let snapshot = store.snapshot();
    let mut state = State::new();
    for (db, database) in snapshot.dbs().iter().enumerate() {
        for (key, item) in database.iter() {
            let Value::String(value) = &item.value else {
                panic!("only strings are written");
            };
            state.insert((db, key.clone()), (value.clone(), item.expire_at_ms));
        }
    }
    state
}

fn save(storage: &SimStorage, store: &Store) -> keeper::Result<()> {
    let snapshot = store.snapshot();
    keeper::snapshot::write_rdb(
        storage,
        Path::new(DUMP),
        &snapshot,
        keeper::snapshot::SaveOptions::default(),
    )
    .map(|_| ())
}

fn load(storage: &SimStorage) -> Store {
    let mut store = Store::new(DATABASES);
    keeper::snapshot::load_rdb(
        storage,
        Path::new(DUMP),
        &mut store,
        keeper::snapshot::ExpiredKeys::Keep,
    )
    .unwrap_or_else(|e| panic!("the file on disk must always load: {e}"));
    store
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn reloads_equal_a_saved_state(seed in any::<u64>(), ops in proptest::collection::vec(op(), 1..60)) {
        let storage = SimStorage::new(seed);
        let mut store = Store::new(DATABASES);
        let mut model = State::new();
        // The states the file on disk may hold (no file = the empty state).
        let mut on_disk: Vec<State> = vec![State::new()];
        for op in ops {
            match op {
                Op::Set { db, key: k, value, ttl } => {
                    let expire = ttl.then_some(4_102_444_800_000 + i64::from(value));
                    let v = own(value.to_string().as_bytes());
                    store.insert(db, key(k), Value::String(v.clone()), expire);
                    model.insert((db, key(k)), (v, expire));
                }
                Op::Del { db, key: k } => {
                    store.remove(db, &key(k));
                    model.remove(&(db, key(k)));
                }
                Op::Save => {
                    save(&storage, &store).expect("a save without faults succeeds");
                    on_disk = vec![model.clone()];
                }
                Op::FaultySave { nth, no_space } => {
                    let error = if no_space { FaultError::NoSpace } else { FaultError::Io };
                    storage.set_faults(FaultPlan { fail_nth: Some((nth, None, error)), byte_budget: None });
                    let result = save(&storage, &store);
                    storage.set_faults(FaultPlan::default());
                    match result {
                        Ok(()) => on_disk = vec![model.clone()],
                        Err(_) => on_disk.push(model.clone()),
                    }
                }
                Op::Reload | Op::Crash(_) => {
                    if let Op::Crash(mode) = op {
                        storage.crash([
                            CrashMode::DropUnsynced,
                            CrashMode::KeepRandomPrefix,
                            CrashMode::TearLastWrite,
                            CrashMode::ZeroFillTail,
                        ][usize::from(mode)]);
                    }
                    store = load(&storage);
                    let loaded = state_of(&store);
                    prop_assert!(
                        on_disk.contains(&loaded),
                        "after {op:?} the store holds a state that was never saved: {} keys, candidates {:?}",
                        loaded.len(),
                        on_disk.iter().map(State::len).collect::<Vec<_>>()
                    );
                    model = loaded.clone();
                    // After a power loss the disk holds exactly what was loaded. A reload
                    // without one read the live file, and a failed save's rename may still be
                    // undone by a later crash: the candidates stay.
                    if matches!(op, Op::Crash(_)) {
                        on_disk = vec![loaded];
                    }
                }
            }
            prop_assert_eq!(state_of(&store), model.clone());
        }
    }
}
