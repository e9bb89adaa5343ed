//! `ctreplay`: see `ctreplay --help`. Exit codes: 0 no INVALID packet, 1 INVALID packets found,
//! 2 the capture could not be analysed (whole).

fn main() -> std::process::ExitCode {
    ctreplay::cli::main()
}
