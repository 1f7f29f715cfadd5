//! The shipped build (`--profile dist`, what `dist build` makes) links the Linux binary as a
//! position-dependent executable: a position-independent one carries a relocation for every
//! pointer in its constant tables (6 MB of `.rela.dyn` in this program, see docs/measured.md),
//! which the loader also has to apply at every start. The cost is that the program's own code
//! is not placed at a random address (its libraries still are). Every other build is left as
//! rustc makes it.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    // OUT_DIR is <target>/[<triple>/]<profile>/build/<package>-<hash>/out.
    let out_dir = std::env::var("OUT_DIR").unwrap_or_default();
    let profile = Path::new(&out_dir)
        .ancestors()
        .nth(3)
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str());
    if linux && profile == Some("dist") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
