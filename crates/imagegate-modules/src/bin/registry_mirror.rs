//! Ansible module `imagegate.containers.registry_mirror`.

fn main() -> std::process::ExitCode {
    imagegate_modules::log_to_stderr("registry_mirror");
    imagegate_ansible::run(&imagegate_modules::mirror::SPEC, imagegate_modules::mirror::run)
}
