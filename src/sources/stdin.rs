//! Standard input as one source, read in chunks so input of any size needs
//! bounded memory.

use super::{Chunker, Origin, Sink, Unit};
use std::io::{self, Read};

/// Feeds everything from `reader` to `sink` as input `name`.
pub fn scan_reader<S: Sink>(
    reader: impl Read,
    name: &str,
    overlap: usize,
    sink: &S,
) -> io::Result<()> {
    let origin = Origin::Stdin(name.to_string());
    let mut worker = sink.new_worker();
    let mut total = 0u64;
    Chunker::new(overlap).stream(reader, |chunk, binary| {
        total = chunk.start.offset + chunk.data.len() as u64;
        sink.unit(
            &mut worker,
            &Unit {
                origin: &origin,
                data: chunk.data,
                keep: chunk.keep,
                start: chunk.start,
                binary,
                decoded: None,
            },
        );
    })?;
    sink.input_done(&mut worker, total);
    Ok(())
}
