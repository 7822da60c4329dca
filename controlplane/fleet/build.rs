//! Generates the built-in service registry from `src/catalog/services/*.rs`.
//!
//! Adding a service is adding one file there that defines `pub(crate) static SERVICE:
//! ServiceDef`; no list anywhere else has to change.

use std::{env, fmt::Write as _, fs, path::Path};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let dir = Path::new(&manifest).join("src/catalog/services");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut modules: Vec<String> = fs::read_dir(&dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
        .collect();
    modules.sort();
    let mut out = String::new();
    for m in &modules {
        let path = dir.join(format!("{m}.rs"));
        writeln!(out, "#[path = {:?}]\nmod {m};", path.display().to_string()).ok();
    }
    out.push_str("/// Every built-in service, sorted by module (file) name.\n");
    out.push_str("pub(crate) static BUILTIN: &[&ServiceDef] = &[\n");
    for m in &modules {
        writeln!(out, "    &{m}::SERVICE,").ok();
    }
    out.push_str("];\n");
    let dest = Path::new(&env::var("OUT_DIR").unwrap_or_else(|_| ".".into())).join("registry.rs");
    fs::write(&dest, out).map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
    Ok(())
}
