#![no_main]

// The harness (and its invariants) lives in the main crate, so that tests/fuzz_corpus.rs
// replays the corpus through the same code on stable.
libfuzzer_sys::fuzz_target!(|data: &[u8]| k8s_upgrade::fuzzing::journal(data));
