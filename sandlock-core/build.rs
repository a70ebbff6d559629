//! Compiles the seccomp filter for every policy shape at build time (see
//! `src/launch/seccomp.rs`).

use std::fmt::Write;

#[allow(dead_code)] // `index` is for the library
#[path = "src/launch/filter/spec.rs"]
mod spec;

#[path = "src/launch/filter/rules.rs"]
mod rules;

fn main() {
    println!("cargo:rerun-if-changed=src/launch/filter/rules.rs");
    println!("cargo:rerun-if-changed=src/launch/filter/spec.rs");
    let mut out = format!(
        "/// The baked filters, indexed by `FilterSpec::index`.\nstatic FILTERS: [&[u8]; {}] = [\n",
        spec::FilterSpec::COUNT
    );
    for spec in spec::FilterSpec::ALL {
        let bytes = rules::build(spec)
            .unwrap_or_else(|e| panic!("building the seccomp filter for {spec:?}: {e}"));
        writeln!(out, "    // {spec:?}\n    &{bytes:?},").expect("write to String");
    }
    out.push_str("];\n");
    let path = std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("filters.rs");
    std::fs::write(path, out).expect("write filters.rs");
}
