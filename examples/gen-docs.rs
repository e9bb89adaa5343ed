//! Regenerates the documentation generated from code: `docs/reasons.md`.
//! `cargo run --example gen-docs`

fn main() -> std::io::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reasons.md");
    std::fs::write(path, ctreplay::report::reasons::markdown())?;
    println!("wrote {path}");
    Ok(())
}
