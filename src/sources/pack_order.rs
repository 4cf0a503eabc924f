//! Where objects lie in a repository's packs, read from the packs' `.idx`
//! files, so that blobs can be read in the order the pack stores them.
//!
//! Git writes a delta's base before the delta, and a file's versions near
//! each other: reading in pack order finds the bases still in libgit2's
//! delta base cache. The order is only a speed-up: a pack index this module
//! cannot read is skipped, and its objects are read last, as before.

use git2::Oid;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// A pack (numbered in the order its index was read) and an offset in it.
pub type PackPosition = (u32, u64);

/// The position of each of `wanted` in the packs of the object directory
/// `objects` (`.git/objects`). Objects in no pack (loose objects, or in an
/// alternate's packs) are absent.
pub fn pack_positions(objects: &Path, wanted: &HashSet<Oid>) -> HashMap<Oid, PackPosition> {
    let mut out = HashMap::with_capacity(wanted.len());
    let Ok(dir) = std::fs::read_dir(objects.join("pack")) else {
        return out;
    };
    let mut indexes: Vec<_> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
        .collect();
    indexes.sort();
    for (pack, idx) in indexes.iter().enumerate() {
        // A pack index we cannot read costs order, not findings.
        let _ = read_index(idx, pack as u32, wanted, &mut out);
    }
    out
}

const OID_LEN: usize = 20;

/// Adds the offsets of `wanted` objects in one version-2 pack index,
/// streaming it (its object ids, then its offsets) so that memory does not
/// grow with the pack.
fn read_index(
    path: &Path,
    pack: u32,
    wanted: &HashSet<Oid>,
    out: &mut HashMap<Oid, PackPosition>,
) -> io::Result<()> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut r = BufReader::with_capacity(1 << 16, File::open(path)?);
    let mut header = [0u8; 8];
    r.read_exact(&mut header)?;
    if header != *b"\xfftOc\x00\x00\x00\x02" {
        return Err(bad("not a version 2 pack index"));
    }
    let mut fanout = [0u8; 256 * 4];
    r.read_exact(&mut fanout)?;
    let count = u32::from_be_bytes(fanout[255 * 4..].try_into().expect("4 bytes")) as usize;
    // Index in the table of each wanted object found, in table order.
    let mut found: Vec<(usize, Oid)> = Vec::new();
    let mut id = [0u8; OID_LEN];
    for i in 0..count {
        r.read_exact(&mut id)?;
        let oid = Oid::from_bytes(&id).map_err(|_| bad("object id"))?;
        if wanted.contains(&oid) {
            found.push((i, oid));
        }
    }
    // Skip the CRC32 table.
    io::copy(&mut (&mut r).take(4 * count as u64), &mut io::sink())?;
    let mut offsets = vec![0u32; found.len()];
    let mut next = found.iter().map(|(i, _)| *i).enumerate().peekable();
    let mut word = [0u8; 4];
    for i in 0..count {
        r.read_exact(&mut word)?;
        while let Some((k, _)) = next.next_if(|(_, at)| *at == i) {
            offsets[k] = u32::from_be_bytes(word);
        }
    }
    // Offsets past 2 GiB point into a table of 64-bit offsets that follows.
    let mut large: Vec<u64> = Vec::new();
    if offsets.iter().any(|o| o & 0x8000_0000 != 0) {
        let mut big = [0u8; 8];
        while r.read_exact(&mut big).is_ok() {
            large.push(u64::from_be_bytes(big));
        }
    }
    for ((_, oid), offset) in found.into_iter().zip(offsets) {
        let offset = if offset & 0x8000_0000 == 0 {
            u64::from(offset)
        } else {
            // The trailer's two checksums were read as (bogus) entries too;
            // a valid index never points at them.
            *large
                .get((offset & 0x7fff_ffff) as usize)
                .ok_or_else(|| bad("large offset"))?
        };
        out.insert(oid, (pack, offset));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn positions_are_the_offsets_git_verify_pack_reports() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        git(d, &["init", "-q"]);
        for i in 0..20 {
            std::fs::write(d.join("f.txt"), format!("line\n").repeat(50 + i)).unwrap();
            std::fs::write(d.join(format!("g{i}.txt")), format!("{i}\n")).unwrap();
            git(d, &["add", "-A"]);
            git(d, &["commit", "-qm", &format!("c{i}")]);
        }
        git(d, &["repack", "-adq"]);
        std::fs::write(d.join("loose.txt"), "only loose\n").unwrap();
        let loose = git(d, &["hash-object", "-w", "loose.txt"]);
        let loose = Oid::from_str(loose.trim()).unwrap();

        let idx = std::fs::read_dir(d.join(".git/objects/pack"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "idx"))
            .unwrap();
        // `git verify-pack -v`: "<id> <type> <size> <size in pack> <offset> ..."
        let verify = git(d, &["verify-pack", "-v", idx.to_str().unwrap()]);
        let expected: HashMap<Oid, PackPosition> = verify
            .lines()
            .filter(|l| l.contains(" blob "))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (Oid::from_str(f[0]).unwrap(), (0, f[4].parse().unwrap()))
            })
            .collect();
        assert!(expected.len() >= 21);
        let mut wanted: HashSet<Oid> = expected.keys().copied().collect();
        wanted.insert(loose);
        let got = pack_positions(&d.join(".git/objects"), &wanted);
        assert_eq!(
            got, expected,
            "every packed blob at its offset, the loose one absent"
        );
    }

    #[test]
    fn an_unreadable_index_gives_no_positions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pack")).unwrap();
        std::fs::write(
            dir.path().join("pack/pack-x.idx"),
            b"\xfftOc\x00\x00\x00\x02short",
        )
        .unwrap();
        let wanted =
            HashSet::from([Oid::from_str("e69de29bb2d1d6434b8b29ae775ad8c2e48c5391").unwrap()]);
        assert!(pack_positions(dir.path(), &wanted).is_empty());
        assert!(pack_positions(&dir.path().join("missing"), &wanted).is_empty());
    }
}
