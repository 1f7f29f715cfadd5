#![recursion_limit = "256"]

fn main() -> std::process::ExitCode {
    latent_atlas::cli::main()
}
