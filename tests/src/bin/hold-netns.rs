//! Test helper: builds a two-host rig with a process running in it, prints the namespace names,
//! then waits to be signalled (see `namespaces_are_removed_when_a_signal_ends_the_process`).

fn main() {
    let net = tests::TwoHosts::new(1);
    let mut sleeper = net.server.exec("sleep").arg("600").spawn().expect("sleep in the namespace");
    // Reaped on a side thread: the main thread must still be here when the signal comes.
    std::thread::spawn(move || sleeper.wait());
    println!("{} {}", net.server.name(), net.client.name());
    std::thread::sleep(std::time::Duration::from_secs(600));
}
