//! `keeper convert IN OUT`: read an RDB and write it again with keeper's writer, keeping AUX
//! replication info, function libraries and module data.

use std::path::Path;

use keeper::rdb::{self, AuxInfo, Event, Reader, ReplicationInfo, WriteOptions, Writer};
use keeper::storage::publish_atomically;
use keeper::{OsStorage, Result, Storage};

use super::progress::Progress;

pub fn run(input: &Path, output: &Path, version: u32) -> Result<()> {
    if super::is_aof(input)? {
        let (store, report) = super::load_aof(input)?;
        if !report.functions.is_empty() {
            eprintln!(
                "note: {} function libraries of the AOF are not carried over",
                report.functions.len()
            );
        }
        let options = keeper::snapshot::SaveOptions {
            rdb_version: version,
            ..keeper::snapshot::SaveOptions::default()
        };
        keeper::snapshot::write_rdb(&OsStorage, output, &store.snapshot(), options)?;
        return Ok(());
    }
    let view = OsStorage.read_all(input)?;
    let progress = Progress::new(view.len() as u64);
    let mut reader = Reader::from_slice(view).map_err(|e| e.with_file(input))?;

    // AUX fields and function libraries come before the keys; read up to the first key so
    // the header can carry them, then stream the rest.
    let mut aux = AuxInfo::default();
    let (mut repl_id, mut repl_offset, mut repl_db) = (None, None, 0u32);
    let mut functions = Vec::new();
    let mut pending = Vec::new();
    while let Some(event) = reader.next_event().map_err(|e| e.with_file(input))? {
        match event {
            Event::Aux { key, value } => {
                let text = String::from_utf8_lossy(&value).into_owned();
                match &key[..] {
                    b"ctime" => aux.ctime = text.parse().ok(),
                    b"used-mem" => aux.used_mem = text.parse().unwrap_or(0),
                    b"repl-id" => repl_id = Some(text),
                    b"repl-offset" => repl_offset = text.parse().ok(),
                    b"repl-stream-db" => repl_db = text.parse().unwrap_or(0),
                    b"aof-base" | b"aof-preamble" => aux.aof_base = text == "1",
                    _ => {}
                }
            }
            Event::Function(code) => functions.push(code),
            other => {
                pending.push(other);
                break;
            }
        }
    }
    if let (Some(id), Some(offset)) = (repl_id, repl_offset) {
        aux.replication = Some(ReplicationInfo {
            id,
            offset,
            stream_db: repl_db,
        });
    }
    let options = WriteOptions {
        version,
        aux,
        ..WriteOptions::default()
    };
    let result = publish_atomically(&OsStorage, output, |file| {
        let mut writer = Writer::new(rdb::FileSink::new(file), options)?;
        for code in &functions {
            writer.write_function(code)?;
        }
        let write = |writer: &mut Writer<_>, event: Event| -> Result<()> {
            match event {
                Event::Entry(entry) => writer.write_entry(&entry),
                Event::Function(code) => writer.write_function(&code),
                Event::ModuleAux {
                    module_id,
                    when,
                    body,
                } => writer.write_module_aux(module_id, when, &body),
                Event::Aux { .. }
                | Event::SelectDb(_)
                | Event::ResizeDb { .. }
                | Event::SlotInfo { .. } => Ok(()),
            }
        };
        for event in pending.drain(..) {
            write(&mut writer, event)?;
        }
        let mut n = 0u64;
        while let Some(event) = reader.next_event().map_err(|e| e.with_file(input))? {
            n += 1;
            if n.is_multiple_of(4096) {
                progress.set(reader.position());
            }
            write(&mut writer, event)?;
        }
        writer.finish()?;
        Ok(())
    });
    progress.finish();
    result.map_err(|e| e.with_file(output))
}
