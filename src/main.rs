//! env0-exporter's entry point: the flags, handed to [`env0_exporter::app`].

/// jemalloc rather than glibc's malloc, with its background thread purging freed memory: glibc
/// kept the peak of the start-up backfill and one arena per thread that ever allocated, and
/// the process stayed above 64 MiB at 200,000 deployments (docs/scale.md, "Memory of the whole
/// process", has the figures of both). The `jemalloc` feature: on in what ships (the Dockerfile,
/// the release binaries) and what is measured; off by default, as its C build is minutes of CPU
/// and the allocator changes no behaviour.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    env0_exporter::app::main(env0_exporter::config::Cli::parse_checked())
}
