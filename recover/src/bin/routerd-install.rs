//! routerd-install: the init of the recovery initramfs that routerd-recover serves. Not for running by hand.

fn main() {
    if std::process::id() != 1 {
        eprintln!(
            "routerd-install runs as init of the recovery initramfs that routerd-recover serves; use routerd-recover"
        );
        std::process::exit(2);
    }
    routerd_recover::install::main()
}
