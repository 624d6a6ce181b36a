//! Ansible module `imagegate.containers.container_build`.

fn main() -> std::process::ExitCode {
    imagegate_modules::log_to_stderr("container_build");
    imagegate_ansible::run(&imagegate_modules::build::SPEC, imagegate_modules::build::run)
}
