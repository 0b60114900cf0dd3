//! blackhole-render: renders one frame of a gravitationally lensed black hole with an
//! accretion disk, as a function of frame time, to an 8-bit RGB PNG.
//!
//! ```text
//! blackhole-render --time T --out PATH [--width W] [--height H] [--result]
//! ```
//!
//! Exit status: 0 on success, 1 when the PNG cannot be written, 2 on a usage error.

mod args;
mod output;
mod render;

use std::process::ExitCode;
use std::time::Instant;

use args::{Args, Command};

const HELP: &str = "\
Renders one frame of a gravitationally lensed black hole (Schwarzschild geodesics, star field,
accretion disk) for frame time T and writes it atomically as an 8-bit RGB PNG.

options:
  --time T      frame time (any finite number); moves the camera and spins the disk
  --out PATH    PNG to write (written to a temporary file in the same directory, then renamed)
  --width W     image width in pixels, 1..=8192 (default 320)
  --height H    image height in pixels, 1..=8192 (default 180)
  --result      print RESULT:{\"frame_time\":T,\"mean_luminance\":X,\"render_ms\":Y} on stdout
  --help        this text

exit status: 0 ok, 1 the PNG could not be written, 2 bad arguments";

/// The `--result` line: `RESULT:` followed by one JSON object.
fn result_line(time: f64, mean_luminance: f64, render_ms: f64) -> String {
    // Rust's f64 Display never uses exponents or NaN/inf here (inputs are finite), so the
    // numbers are valid JSON as printed; `time` round-trips exactly.
    format!(
        "RESULT:{{\"frame_time\":{time},\"mean_luminance\":{mean_luminance:.6},\"render_ms\":{render_ms:.3}}}"
    )
}

fn run(a: &Args) -> ExitCode {
    let start = Instant::now();
    let rgb = render::render(a.time, a.width, a.height);
    let png = match output::encode_png(&rgb, a.width, a.height) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "blackhole-render: cannot encode PNG for '{}': {e}",
                a.out.display()
            );
            return ExitCode::from(1);
        }
    };
    if let Err(e) = output::write_atomic(&a.out, &png) {
        eprintln!("blackhole-render: {e}");
        return ExitCode::from(1);
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    if a.result {
        println!("{}", result_line(a.time, render::mean_luminance(&rgb), ms));
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    match args::parse(std::env::args_os().skip(1)) {
        Ok(Command::Render(a)) => run(&a),
        Ok(Command::Help) => {
            println!("{}\n\n{HELP}", args::USAGE);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("blackhole-render: {e}\n{}", args::USAGE);
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_is_prefixed_json() {
        let l = result_line(12.5, 0.123_456_78, 42.0);
        assert_eq!(
            l,
            r#"RESULT:{"frame_time":12.5,"mean_luminance":0.123457,"render_ms":42.000}"#
        );
        // Integral and negative times stay plain JSON numbers.
        assert!(result_line(0.0, 0.0, 1.0).starts_with(r#"RESULT:{"frame_time":0,"#));
        assert!(result_line(-3.0, 0.0, 1.0).starts_with(r#"RESULT:{"frame_time":-3,"#));
        assert!(result_line(1e-7, 0.0, 1.0).starts_with(r#"RESULT:{"frame_time":0.0000001,"#));
    }
}
