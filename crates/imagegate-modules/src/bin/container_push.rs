//! Ansible module `imagegate.containers.container_push`.

fn main() -> std::process::ExitCode {
    imagegate_modules::log_to_stderr("container_push");
    imagegate_ansible::run(&imagegate_modules::push::SPEC, imagegate_modules::push::run)
}
