//! env0-exporter's entry point: the flags, handed to [`env0_exporter::app`].

fn main() -> std::process::ExitCode {
    env0_exporter::app::main(env0_exporter::config::Cli::parse_checked())
}
