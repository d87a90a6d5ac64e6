//! Every input in the fuzz targets' seed corpus (`fuzz/corpus/`) and every input a fuzzer
//! ever failed on (`fuzz/regressions/`), replayed through the same harness as an ordinary
//! test: no nightly features, no libFuzzer. A crash found by `.ci/fuzz` is fixed, then its
//! input is committed under `fuzz/regressions/<target>/` so it stays fixed.

mod fuzz_harness;

use std::fs;
use std::path::Path;

fn replay(target: &str, run: fn(&[u8]) -> Vec<u8>) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| run(&data));
            assert!(result.is_ok(), "{} fails", path.display());
            count += 1;
        }
    }
    count
}

#[test]
fn the_http1_seeds_and_regressions_pass() {
    assert!(replay("http1_request", fuzz_harness::http1) > 0);
}

#[test]
fn the_websocket_seeds_and_regressions_pass() {
    assert!(replay("websocket_frames", fuzz_harness::websocket) > 0);
}

#[test]
fn a_pipelined_exchange_is_answered_in_full() {
    // The harness itself: what it reports is what a client would see.
    let mut data = vec![0u8];
    data.extend_from_slice(
        b"GET /abcd HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
    );
    let out = String::from_utf8(fuzz_harness::http1(&data)).unwrap();
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
    assert!(out.ends_with("4\r\npart\r\n3\r\nend\r\n0\r\n\r\n"), "{out}");
}
