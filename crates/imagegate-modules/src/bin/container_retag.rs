//! Ansible module `imagegate.containers.container_retag`.

fn main() -> std::process::ExitCode {
    imagegate_modules::log_to_stderr("container_retag");
    imagegate_ansible::run(&imagegate_modules::retag::SPEC, imagegate_modules::retag::run)
}
