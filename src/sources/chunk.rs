//! Splitting large inputs into overlapping chunks, and keeping track of the
//! line and column at each chunk's start.

use std::io::{self, Read};
use std::ops::Range;

/// Bytes of new data per chunk of a large input.
pub const CHUNK_SIZE: usize = 8 << 20;
/// The most a streamed input's buffer grows by per read.
const READ_STEP: usize = 256 << 10;
/// How much of the start of an input decides whether it is binary.
const BINARY_PROBE: usize = 8192;

/// A place in an input: byte offset, 1-based line, 1-based column in
/// characters (UTF-8 continuation bytes do not count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub offset: u64,
    pub line: u64,
    pub column: u64,
}

impl Position {
    /// The start of an input.
    pub const START: Position = Position {
        offset: 0,
        line: 1,
        column: 1,
    };

    /// The position just after `bytes`, which follow `self`.
    pub fn advance(self, bytes: &[u8]) -> Position {
        let offset = self.offset + bytes.len() as u64;
        match memchr::memrchr(b'\n', bytes) {
            None => Position {
                offset,
                line: self.line,
                column: self.column + count_chars(bytes),
            },
            Some(last) => Position {
                offset,
                line: self.line + count_newlines(&bytes[..last]) + 1,
                column: 1 + count_chars(&bytes[last + 1..]),
            },
        }
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytecount::count(bytes, b'\n') as u64
}

/// Characters as UTF-8 counts them: bytes that are not continuation bytes
/// (so each invalid byte counts as one).
fn count_chars(bytes: &[u8]) -> u64 {
    bytecount::num_chars(bytes) as u64
}

/// True when the start of an input holds a NUL byte, as git and ripgrep
/// decide.
pub fn looks_binary(start: &[u8]) -> bool {
    memchr::memchr(0, &start[..start.len().min(BINARY_PROBE)]).is_some()
}

/// One chunk: `data` is what the matcher sees, `keep` the part whose
/// matches belong to this chunk (the rest is context shared with the
/// neighbours), `start` the position of `data[0]`.
pub struct Chunk<'a> {
    pub data: &'a [u8],
    pub keep: Range<usize>,
    pub start: Position,
}

/// Cuts inputs into chunks of [`CHUNK_SIZE`] new bytes that share
/// `overlap` bytes of context on each side.
#[derive(Debug, Clone, Copy)]
pub struct Chunker {
    pub size: usize,
    pub overlap: usize,
}

impl Chunker {
    pub fn new(overlap: usize) -> Self {
        Chunker {
            size: CHUNK_SIZE,
            overlap,
        }
    }

    /// Calls `f` for each chunk of an in-memory input, in order; an empty
    /// input is one empty chunk.
    pub fn slices(&self, all: &[u8], mut f: impl FnMut(Chunk<'_>)) {
        let mut pos = Position::START;
        let mut keep_start = 0;
        loop {
            let keep_end = (keep_start + self.size).min(all.len());
            let data_start = keep_start.saturating_sub(self.overlap);
            let data_end = (keep_end + self.overlap).min(all.len());
            // Where the next chunk's data starts, counted now: `f` may
            // release this chunk's pages (mmap), and reading them again
            // afterwards would fault them all back in.
            let next_start = keep_end.saturating_sub(self.overlap).max(data_start);
            let next_pos = pos.advance(&all[data_start..next_start]);
            f(Chunk {
                data: &all[data_start..data_end],
                keep: keep_start - data_start..keep_end - data_start,
                start: pos,
            });
            if keep_end >= all.len() {
                return;
            }
            pos = next_pos;
            keep_start = keep_end;
        }
    }

    /// Calls `f` for each chunk of a stream, holding at most one chunk and
    /// its context in memory; `f` is also told whether the input looks
    /// binary. A read error ends the stream: what was read before it is
    /// still given to `f`, then the error is returned.
    pub fn stream(&self, mut r: impl Read, mut f: impl FnMut(Chunk<'_>, bool)) -> io::Result<()> {
        // Grown as bytes come, not made a chunk's size up front: most
        // streamed inputs (archive members) are small, and zeroing a whole
        // chunk for each cost memory and time (BENCHMARKS.md, issue 20).
        let mut buf: Vec<u8> = Vec::new();
        // Position of buf[0], and the offset (in the input) where the next
        // chunk's `keep` starts.
        let mut buf_pos = Position::START;
        let mut keep_start: u64 = 0;
        let mut binary = None;
        let mut eof = false;
        let mut failed = None;
        loop {
            let want = (keep_start - buf_pos.offset) as usize + self.size + self.overlap;
            while !eof && buf.len() < want {
                let old = buf.len();
                buf.resize(want.min(old + READ_STEP), 0);
                match r.read(&mut buf[old..]) {
                    Ok(0) => {
                        buf.truncate(old);
                        eof = true;
                    }
                    Ok(n) => buf.truncate(old + n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(old),
                    Err(e) => {
                        buf.truncate(old);
                        failed = Some(e);
                        eof = true;
                    }
                }
            }
            let is_binary = *binary.get_or_insert_with(|| looks_binary(&buf));
            let keep_from = (keep_start - buf_pos.offset) as usize;
            let keep_to = (keep_from + self.size).min(buf.len());
            let data_from = keep_from.saturating_sub(self.overlap);
            let data_to = (keep_to + self.overlap).min(buf.len());
            let data_pos = buf_pos.advance(&buf[..data_from]);
            f(
                Chunk {
                    data: &buf[data_from..data_to],
                    keep: keep_from - data_from..keep_to - data_from,
                    start: data_pos,
                },
                is_binary,
            );
            if eof && keep_to >= buf.len() {
                return failed.map_or(Ok(()), Err);
            }
            keep_start = buf_pos.offset + keep_to as u64;
            // Drop what no later chunk needs as context.
            let drop = keep_to.saturating_sub(self.overlap);
            buf_pos = buf_pos.advance(&buf[..drop]);
            buf.drain(..drop);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader of a few bytes that notes the largest buffer it is given.
    struct Noting<'a> {
        data: &'a [u8],
        largest: usize,
    }

    impl std::io::Read for Noting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.largest = self.largest.max(buf.len());
            let n = buf.len().min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Gives its bytes, then an error.
    struct Breaking<'a>(&'a [u8]);

    impl std::io::Read for Breaking<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::other("cut short"));
            }
            let n = buf.len().min(self.0.len()).min(1000);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn what_was_read_before_an_error_is_still_chunked() {
        // A stream cut short (a truncated download): the bytes before the
        // cut hold keys too.
        let data: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let chunker = Chunker {
            size: 4096,
            overlap: 64,
        };
        let mut kept = Vec::new();
        let result = chunker.stream(Breaking(&data), |chunk, _| {
            kept.extend_from_slice(&chunk.data[chunk.keep.clone()]);
        });
        assert_eq!(result.unwrap_err().to_string(), "cut short");
        assert_eq!(kept, data);
    }

    #[test]
    fn a_small_stream_never_gets_a_whole_chunks_buffer() {
        // Each archive member is streamed: a chunk's worth of zeroed
        // buffer per member cost 8 MiB of memory and a memset each.
        let mut r = Noting {
            data: b"a few bytes\n",
            largest: 0,
        };
        let mut seen = Vec::new();
        Chunker::new(64)
            .stream(&mut r, |c, _| seen.extend_from_slice(c.data))
            .unwrap();
        assert_eq!(seen, b"a few bytes\n");
        assert!(r.largest <= READ_STEP, "a buffer of {} bytes", r.largest);
    }

    #[test]
    fn position_counts_lines_and_characters() {
        let p = Position::START.advance("ab\ncdé".as_bytes());
        assert_eq!((p.line, p.column, p.offset), (2, 4, 7));
        let p = p.advance(b"xy");
        assert_eq!((p.line, p.column), (2, 6));
        let p = p.advance(b"\n\n");
        assert_eq!((p.line, p.column), (4, 1));
    }

    /// Every byte of the input is in exactly one chunk's `keep`, chunks see
    /// `overlap` bytes of context, and each chunk's start position is what
    /// counting from the beginning gives.
    fn check_cover(all: &[u8], chunks: &[(Vec<u8>, Range<usize>, Position)], overlap: usize) {
        let mut next_keep = 0u64;
        for (data, keep, start) in chunks {
            assert_eq!(
                *start,
                Position::START.advance(&all[..start.offset as usize])
            );
            let data_off = start.offset as usize;
            assert_eq!(&all[data_off..data_off + data.len()], &data[..]);
            assert_eq!(data_off + keep.start, next_keep as usize);
            assert!(keep.start == overlap || data_off == 0);
            next_keep = (data_off + keep.end) as u64;
        }
        assert_eq!(next_keep as usize, all.len());
    }

    fn sample(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| {
                if i % 37 == 0 {
                    b'\n'
                } else {
                    b'a' + (i % 26) as u8
                }
            })
            .collect()
    }

    #[test]
    fn slices_cover_input_with_overlap() {
        let all = sample(1000);
        let c = Chunker {
            size: 64,
            overlap: 10,
        };
        let mut got = Vec::new();
        c.slices(&all, |ch| got.push((ch.data.to_vec(), ch.keep, ch.start)));
        assert_eq!(got.len(), 16);
        check_cover(&all, &got, 10);
    }

    #[test]
    fn stream_gives_the_same_chunks_as_slices() {
        let all = sample(1000);
        let c = Chunker {
            size: 64,
            overlap: 10,
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        c.slices(&all, |ch| a.push((ch.data.to_vec(), ch.keep, ch.start)));
        // A reader that returns at most 7 bytes a call.
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = out.len().min(7).min(self.0.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        c.stream(Dribble(&all), |ch, _| {
            b.push((ch.data.to_vec(), ch.keep, ch.start))
        })
        .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn empty_input_is_one_empty_chunk() {
        let c = Chunker::new(10);
        let mut n = 0;
        c.stream(&b""[..], |ch, bin| {
            assert!(ch.data.is_empty() && !bin);
            n += 1;
        })
        .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn nul_in_first_8k_means_binary() {
        assert!(looks_binary(b"abc\0def"));
        assert!(!looks_binary(b"plain text"));
        let mut late = vec![b'a'; 9000];
        late.push(0);
        assert!(!looks_binary(&late));
    }
}
