//! Regenerates the documentation generated from code: `docs/reasons.md`, and the table of
//! kernel behaviour switches in `docs/kernels.md`.
//! `cargo run --example gen-docs`

fn main() -> std::io::Result<()> {
    let root = env!("CARGO_MANIFEST_DIR");
    let reasons = format!("{root}/docs/reasons.md");
    std::fs::write(&reasons, ctreplay::report::reasons::markdown())?;
    println!("wrote {reasons}");
    let kernels = format!("{root}/docs/kernels.md");
    let doc = std::fs::read_to_string(&kernels)?;
    let fresh = ctreplay::conntrack::profile::update_kernels_doc(&doc)
        .ok_or_else(|| std::io::Error::other("docs/kernels.md lost its generated-section markers"))?;
    std::fs::write(&kernels, fresh)?;
    println!("wrote {kernels}");
    Ok(())
}
