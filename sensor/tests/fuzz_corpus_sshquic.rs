//! Replays the seed corpora of the SSH and QUIC fuzz targets
//! (`sensor/fuzz/corpus/ssh/` and `quic_initial/`) through the functions
//! the targets call, so every seed, and every crash input added to them,
//! stays a regression test on stable Rust. Seeds named `ok_*` are complete
//! handshakes: each must give exactly one record.
//!
//! The seeds are made by this file's ignored test `write_seeds` from
//! handshakes built here (never from corpus captures):
//! `cargo test -p sensor --test fuzz_corpus_sshquic -- --ignored write_seeds`.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use sensor::dissect::quic::initial::{Keys, V1, V2, initial_bits, seal};
use sensor::dissect::quic::{fuzz_frame, fuzz_input as quic_fuzz};
use sensor::dissect::ssh::fuzz_input as ssh_fuzz;
use sensor::packet::Direction;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn replay(target: &str, run: fn(&[u8]) -> usize, minimum: usize) {
    let seeds = seeds(target);
    assert!(
        seeds.len() >= minimum,
        "the {target} seed corpus is missing"
    );
    for (name, data) in &seeds {
        let records = run(data);
        if name.starts_with("ok_") {
            assert_eq!(records, 1, "{target}/{name}");
        } else {
            assert!(records <= 1, "{target}/{name}");
        }
        // Truncations too: the fuzzer's first mutations.
        for n in (0..data.len()).step_by(7) {
            assert!(run(&data[..n]) <= 1, "{target}/{name} cut at {n}");
        }
    }
}

#[test]
fn ssh_seeds_replay() {
    replay("ssh", ssh_fuzz, 5);
}

#[test]
fn quic_initial_seeds_replay() {
    replay("quic_initial", quic_fuzz, 5);
}

// ---- Seed making -------------------------------------------------------

fn kexinit_packet(lists: [&str; 10]) -> Vec<u8> {
    let mut payload = vec![20u8];
    payload.extend_from_slice(&[7; 16]);
    for l in lists {
        payload.extend_from_slice(&(l.len() as u32).to_be_bytes());
        payload.extend_from_slice(l.as_bytes());
    }
    payload.extend_from_slice(&[0, 0, 0, 0, 0]);
    let padding = 8 - (payload.len() + 5) % 8 + 4;
    let mut p = ((payload.len() + padding + 1) as u32)
        .to_be_bytes()
        .to_vec();
    p.push(padding as u8);
    p.extend_from_slice(&payload);
    p.extend(std::iter::repeat_n(0u8, padding));
    p
}

fn ssh_client() -> Vec<u8> {
    let mut s = b"SSH-2.0-OpenSSH_9.6\r\n".to_vec();
    s.extend(kexinit_packet([
        "curve25519-sha256,ecdh-sha2-nistp256,ext-info-c",
        "ssh-ed25519,rsa-sha2-512",
        "chacha20-poly1305@openssh.com,aes128-ctr",
        "chacha20-poly1305@openssh.com,aes128-ctr",
        "umac-64-etm@openssh.com,hmac-sha2-256",
        "umac-64-etm@openssh.com,hmac-sha2-256",
        "none,zlib@openssh.com",
        "none,zlib@openssh.com",
        "",
        "",
    ]));
    s
}

fn ssh_server(preamble: &[u8], banner: &[u8]) -> Vec<u8> {
    let mut s = preamble.to_vec();
    s.extend_from_slice(banner);
    s.extend(kexinit_packet([
        "ecdh-sha2-nistp256,curve25519-sha256",
        "rsa-sha2-512",
        "aes128-ctr",
        "aes256-ctr",
        "hmac-sha2-256",
        "hmac-sha1",
        "none",
        "zlib",
        "",
        "",
    ]));
    s
}

/// Chunks in `ssh::fuzz_input`'s format: `len << 1 | direction`, bytes.
fn ssh_chunks(streams: &[(u8, &[u8])], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (dir, stream) in streams {
        for chunk in stream.chunks(size.min(126)) {
            out.push(((chunk.len() as u8) << 1) | dir);
            out.extend_from_slice(chunk);
        }
    }
    out
}

/// The ClientHello of RFC 9001 Appendix A (for example.com).
const HELLO: &str = "010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e86804fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578616d706c652e636f6dff01000100000a00080006001d0017001800100007000504616c706e000500050100000000003300260024001d00209370b2c9caa47fbabaf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b0003020304000d0010000e0403050306030203080408050806002d00020101001c00024001003900320408ffffffffffffffff05048000ffff07048000ffff0801100104800075300901100f088394c8f03e51570806048000ffff";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn crypto_frame(offset: usize, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x06];
    f.extend_from_slice(&(0x4000 | offset as u16).to_be_bytes());
    f.extend_from_slice(&(0x4000 | data.len() as u16).to_be_bytes());
    f.extend_from_slice(data);
    f
}

fn initial(version: u32, dcid: &[u8], pn: u32, frames: &[u8], pad_to: usize) -> Vec<u8> {
    let mut payload = frames.to_vec();
    payload.resize(payload.len().max(pad_to), 0);
    let mut header = vec![0xc3 | (initial_bits(version) << 4)];
    header.extend_from_slice(&version.to_be_bytes());
    header.push(dcid.len() as u8);
    header.extend_from_slice(dcid);
    header.extend_from_slice(&[4, 1, 2, 3, 4, 0]);
    header.extend_from_slice(&(0x4000 | (4 + payload.len() + 16) as u16).to_be_bytes());
    header.extend_from_slice(&pn.to_be_bytes());
    let keys = Keys::initial(version, dcid, true).unwrap();
    seal(&keys, &header, u64::from(pn), &payload).unwrap()
}

#[test]
#[ignore = "writes the seed corpora; run by hand after changing the formats"]
fn write_seeds() {
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    };
    let c = ssh_client();
    let s = ssh_server(b"", b"SSH-2.0-OpenSSH_8.9\r\n");
    write("ssh", "ok_handshake", &ssh_chunks(&[(0, &c), (1, &s)], 100));
    write("ssh", "ok_bytewise", &ssh_chunks(&[(1, &s), (0, &c)], 1));
    let pre = ssh_server(b"Welcome\r\nto the host\n", b"SSH-1.99-Cisco-1.25\n");
    write("ssh", "ok_preamble", &ssh_chunks(&[(1, &pre), (0, &c)], 60));
    write(
        "ssh",
        "ok_ssh1",
        &ssh_chunks(&[(0, b"SSH-1.5-1.2.27\n"), (1, b"SSH-1.5-x\n")], 50),
    );
    let mut gap = ssh_chunks(&[(0, &c[..40])], 40);
    gap.push(0xfe);
    gap.extend(ssh_chunks(&[(1, &s)], 90));
    write("ssh", "gap_in_client", &gap);

    let hello = unhex(HELLO);
    let dcid = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
    let v1 = initial(V1, &dcid, 0, &crypto_frame(0, &hello), 1162);
    write(
        "quic_initial",
        "ok_v1",
        &fuzz_frame(&[(Direction::Originator, &v1)]),
    );
    let v2 = initial(V2, &dcid, 0, &crypto_frame(0, &hello), 1162);
    write(
        "quic_initial",
        "ok_v2",
        &fuzz_frame(&[(Direction::Originator, &v2)]),
    );
    let a = initial(V1, &dcid, 0, &crypto_frame(0, &hello[..100]), 300);
    let b = initial(V1, &dcid, 1, &crypto_frame(100, &hello[100..]), 300);
    write(
        "quic_initial",
        "ok_reversed",
        &fuzz_frame(&[(Direction::Originator, &b), (Direction::Originator, &a)]),
    );
    let mut coalesced = initial(V1, &dcid, 0, &crypto_frame(0, &hello[..60]), 100);
    coalesced.extend_from_slice(&[0xe0, 0, 0, 0, 1, 0, 0, 5, 1, 2, 3, 4, 5]);
    write(
        "quic_initial",
        "partial_coalesced",
        &fuzz_frame(&[
            (Direction::Originator, &coalesced),
            (Direction::Responder, &[0xc0, 0, 0, 0, 1, 0, 0]),
        ]),
    );
    // A decrypted payload (control bit 1): ACK, PING, PADDING and two
    // CRYPTO frames in reverse order.
    let mut plain = vec![0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00];
    plain.extend(crypto_frame(50, &hello[50..]));
    plain.extend(crypto_frame(0, &hello[..50]));
    let mut seed = vec![2u8];
    seed.extend_from_slice(&(plain.len() as u16).to_be_bytes());
    seed.extend_from_slice(&plain);
    write("quic_initial", "ok_plain_frames", &seed);
}
