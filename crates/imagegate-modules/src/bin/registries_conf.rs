//! Ansible module `imagegate.containers.registries_conf`.

fn main() -> std::process::ExitCode {
    imagegate_modules::log_to_stderr("registries_conf");
    imagegate_ansible::run(&imagegate_modules::registries_conf::SPEC, imagegate_modules::registries_conf::run)
}
