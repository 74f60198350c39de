//! `keeper inspect [--format json|resp|summary] FILE`: an RDB file, or an AOF (file, manifest
//! or directory), which is replayed into a store first.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use keeper::aof::rewrite::entry_commands;
use keeper::dataset::DatasetSnapshot;
use keeper::rdb::{Event, Reader};
use keeper::resp::write_command;
use keeper::{Error, OsStorage, Result, Storage};

use super::progress::Progress;
use super::{Format, json};

pub fn run(path: &Path, format: Format) -> Result<()> {
    let stdout = io::stdout();
    let mut printer = Printer {
        out: BufWriter::with_capacity(1 << 20, stdout.lock()),
        format,
        resp: Vec::new(),
        selected_db: None,
    };
    if super::is_aof(path)? {
        let store = super::load_aof(path)?;
        for code in store.1.functions {
            printer.print(Event::Function(code))?;
        }
        let snapshot = store.0.snapshot();
        for db in 0..snapshot.databases() {
            snapshot.for_each_entry(db, &mut |entry| printer.print(Event::Entry(entry)))?;
        }
        return printer.out.flush().map_err(write_err);
    }
    let view = OsStorage.read_all(path)?;
    let progress = Progress::new(view.len() as u64);
    let mut reader = Reader::from_slice(view).map_err(|e| e.with_file(path))?;
    let mut n = 0u64;
    while let Some(event) = reader.next_event().map_err(|e| e.with_file(path))? {
        n += 1;
        if n.is_multiple_of(4096) {
            progress.set(reader.position());
        }
        printer.print(event)?;
    }
    progress.finish();
    printer.out.flush().map_err(write_err)
}

fn write_err(e: io::Error) -> Error {
    Error::Io {
        path: None,
        op: "write to stdout",
        source: e,
    }
}

struct Printer<W: Write> {
    out: W,
    format: Format,
    resp: Vec<u8>,
    selected_db: Option<u32>,
}

impl<W: Write> Printer<W> {
    fn print(&mut self, event: Event) -> Result<()> {
        let out = &mut self.out;
        let resp = &mut self.resp;
        match (self.format, event) {
            (Format::Json, Event::Function(code)) => {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "function": json::bytes(&code) })
                )
                .map_err(write_err)?;
            }
            (Format::Json, Event::Entry(entry)) => {
                writeln!(out, "{}", json::entry(&entry)).map_err(write_err)?;
            }
            (Format::Resp, Event::Function(code)) => {
                resp.clear();
                write_command(resp, &[&b"FUNCTION"[..], b"LOAD", &code]);
                out.write_all(resp).map_err(write_err)?;
            }
            (Format::Resp, Event::Entry(entry)) => {
                resp.clear();
                if self.selected_db != Some(entry.db) {
                    write_command(
                        resp,
                        &[b"SELECT".to_vec(), entry.db.to_string().into_bytes()],
                    );
                    self.selected_db = Some(entry.db);
                }
                let result = entry_commands(&entry, &mut |cmd| write_command(resp, &cmd));
                if let Err(why) = result {
                    eprintln!(
                        "skipping key {:?}: {why}",
                        String::from_utf8_lossy(&entry.key)
                    );
                }
                out.write_all(resp).map_err(write_err)?;
            }
            (Format::Summary, Event::Entry(entry)) => {
                writeln!(
                    out,
                    "db={} key={:?} type={} len={} expire_at_ms={}",
                    entry.db,
                    String::from_utf8_lossy(&entry.key),
                    entry.value.type_name(),
                    entry.value.len(),
                    entry
                        .expire_at_ms
                        .map_or("none".to_string(), |t| t.to_string()),
                )
                .map_err(write_err)?;
            }
            _ => {}
        }
        Ok(())
    }
}
