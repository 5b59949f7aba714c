//! The fabric's Zenoh key space (PROTOCOL.md §16.2), version 1.
//!
//! Every key is under `weft/`; a device's keys are under its name, which
//! [`valid_name`] restricts to `[a-z0-9-]` so that a name can never add a
//! chunk or a wildcard to a key expression.
//!
//! | key | Zenoh entity | meaning |
//! |---|---|---|
//! | `weft/dev/<name>` | liveliness token | the device is available |
//! | `weft/dev/<name>/call` | queryable | the device's fabric calls ([`crate::wire::Request`]) |
//! | `weft/dev/<name>/blob/<sha256>` | queryable | a Wasm module this device offers by content hash |
//! | `weft/dev/<name>/exit/<n>` | put | process `<name>:<n>` ended ([`crate::wire::Exit`]) |
//! | `weft/dev/<name>/start/<n>` | put | process `<name>:<n>` started ([`crate::wire::Start`]) |
//! | `weft/dev/<name>/ip/<ip>` | liveliness token | the device owns fabric address `<ip>` |
//! | `weft/dev/<name>/udp/<id>` | put | a datagram for socket `<id>` of the device ([`crate::udp`]) |
//! | `weft/dev/<name>/holds/<first>/<n>/<local>` | liveliness token | the device runs process `<first>:<n>`, moved there, as its process `<local>` |
//! | `weft/fabric/removed/<name>` | put | device `<name>` was removed from the fabric |

use crate::identity::DeviceName;
use std::net::IpAddr;

/// The liveliness key expression every device's presence matches.
pub const PRESENCE_ALL: &str = "weft/dev/*";
/// Removal notices, for every device.
pub const REMOVED_ALL: &str = "weft/fabric/removed/*";
/// Every device's process exits.
pub const EXIT_ALL: &str = "weft/dev/*/exit/*";
/// Every device's process starts.
pub const START_ALL: &str = "weft/dev/*/start/*";

/// Every device's fabric addresses (liveliness tokens).
pub const FABRIC_IPS_ALL: &str = "weft/dev/*/ip/*";
/// Every device's processes moved there (liveliness tokens).
pub const HOLDS_ALL: &str = "weft/dev/*/holds/*/*/*";

/// Whether `name` is a valid device name ([`DeviceName`]'s rule: 1 to 32
/// characters of `[a-z0-9-]`, not starting with `-`).
pub fn valid_name(name: &str) -> bool {
    DeviceName::new(name).is_ok()
}

/// `weft/dev/<name>`: the device's presence token.
pub fn presence(name: &str) -> String {
    format!("weft/dev/{name}")
}

/// The device name of a presence key, if it is one of a valid name.
pub fn device_of_presence(key: &str) -> Option<&str> {
    key.strip_prefix("weft/dev/").filter(|n| valid_name(n))
}

/// `weft/dev/<name>/call`: the device's fabric calls.
pub fn call(name: &str) -> String {
    format!("weft/dev/{name}/call")
}

/// `weft/dev/<name>/adopt`: the device takes apps moved to it (§19.4).
pub fn adopt(name: &str) -> String {
    format!("weft/dev/{name}/adopt")
}

/// `weft/dev/<name>/blob/<sha256>`: a module offered by content hash.
pub fn blob(name: &str, sha256_hex: &str) -> String {
    format!("weft/dev/{name}/blob/{sha256_hex}")
}

/// Every blob device `name` offers.
pub fn blobs(name: &str) -> String {
    format!("weft/dev/{name}/blob/*")
}

/// `weft/dev/<name>/exit/<n>`: the exit of process `<name>:<n>`.
pub fn exit(name: &str, pid: u32) -> String {
    format!("weft/dev/{name}/exit/{pid}")
}

/// `weft/dev/<name>/start/<n>`: the start of process `<name>:<n>`.
pub fn start(name: &str, pid: u32) -> String {
    format!("weft/dev/{name}/start/{pid}")
}

/// The pid (`NAME:N`) an exit or start key names, if it is one of a valid
/// device name and process number.
pub fn pid_of_process_key(key: &str) -> Option<String> {
    let rest = key.strip_prefix("weft/dev/")?;
    let (name, rest) = rest.split_once('/')?;
    let (what, n) = rest.split_once('/')?;
    let number: u32 = n.parse().ok()?;
    // One spelling per number: no sign, no leading zeros.
    let canonical = number.to_string() == n;
    (valid_name(name) && matches!(what, "exit" | "start") && canonical)
        .then(|| crate::wire::Pid::text(name, number))
}

/// `weft/dev/<name>/ip/<ip>`: device `name` owns fabric address `ip`.
pub fn fabric_ip(name: &str, ip: IpAddr) -> String {
    format!("weft/dev/{name}/ip/{ip}")
}

/// The device and address of a fabric-address token's key, if it is one
/// of a valid name and an address in its canonical text.
pub fn of_fabric_ip(key: &str) -> Option<(&str, IpAddr)> {
    let rest = key.strip_prefix("weft/dev/")?;
    let (name, text) = rest.split_once("/ip/")?;
    let ip: IpAddr = text.parse().ok()?;
    (valid_name(name) && ip.to_string() == text).then_some((name, ip))
}

/// `weft/dev/<name>/holds/<first>/<n>/<local>`: device `name` runs
/// process `pid` (born `<first>:<n>`), moved there, as its process `local`.
pub fn holds(name: &str, pid: &crate::wire::Pid, local: u32) -> String {
    format!("weft/dev/{name}/holds/{}/{}/{local}", pid.device, pid.n)
}

/// What a holds token's key says: the pid (`FIRST:N`), the device that
/// runs it and its process number there, if every part is valid and every
/// number canonical.
pub fn of_holds(key: &str) -> Option<(String, String, u32)> {
    let mut parts = key.strip_prefix("weft/dev/")?.split('/');
    let (holder, what, first, n, local) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let number = |t: &str| t.parse::<u32>().ok().filter(|v| v.to_string() == t);
    let (n, local) = (number(n)?, number(local)?);
    (parts.next().is_none() && what == "holds" && valid_name(holder) && valid_name(first))
        .then(|| (crate::wire::Pid::text(first, n), holder.to_string(), local))
}

/// `weft/dev/<name>/udp/<id>`: datagrams for socket `id` of device `name`.
pub fn udp(name: &str, id: u64) -> String {
    format!("weft/dev/{name}/udp/{id}")
}

/// Every socket of device `name`.
pub fn udp_all(name: &str) -> String {
    format!("weft/dev/{name}/udp/*")
}

/// The socket id of a key under [`udp_all`]`(name)` (decimal, no sign, no
/// leading zeros).
pub fn udp_id(name: &str, key: &str) -> Option<u64> {
    let n = key
        .strip_prefix("weft/dev/")?
        .strip_prefix(name)?
        .strip_prefix("/udp/")?;
    let id: u64 = n.parse().ok()?;
    (id.to_string() == n).then_some(id)
}

/// `weft/fabric/removed/<name>`: device `name` was removed.
pub fn removed(name: &str) -> String {
    format!("weft/fabric/removed/{name}")
}

/// The device name of a removal key, if it is one of a valid name.
pub fn device_of_removal(key: &str) -> Option<&str> {
    key.strip_prefix("weft/fabric/removed/")
        .filter(|n| valid_name(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_reach_outside_their_chunk() {
        for good in ["a", "alpha", "dev-2", "0", &"x".repeat(32)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "-a",
            "A",
            "a/b",
            "a*",
            "**",
            "a$",
            "a b",
            "é",
            &"x".repeat(33),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn holds_keys_name_a_pid_its_holder_and_its_number_there() {
        let pid = crate::wire::Pid {
            device: "a".into(),
            n: 5,
        };
        let key = holds("c", &pid, 2);
        assert_eq!(key, "weft/dev/c/holds/a/5/2");
        assert_eq!(of_holds(&key), Some(("a:5".into(), "c".into(), 2)));
        for bad in [
            "weft/dev/c/holds/a/05/2",
            "weft/dev/c/holds/a/5/+2",
            "weft/dev/c/holds/A/5/2",
            "weft/dev/c/holds/a/5/2/9",
            "weft/dev/c/holds/a/5",
            "weft/dev/c/exit/a/5/2",
            "weft/dev/C/holds/a/5/2",
        ] {
            assert_eq!(of_holds(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_round_trip_to_their_device() {
        assert_eq!(device_of_presence(&presence("beta")), Some("beta"));
        assert_eq!(device_of_presence("weft/dev/beta/call"), None);
        assert_eq!(device_of_presence("weft/dev/"), None);
        assert_eq!(device_of_removal(&removed("c-3")), Some("c-3"));
        assert_eq!(device_of_removal("weft/fabric/removed/X"), None);
        assert_eq!(exit("c", 7), "weft/dev/c/exit/7");
        assert_eq!(pid_of_process_key(&exit("c", 7)).as_deref(), Some("c:7"));
        assert_eq!(
            pid_of_process_key(&start("b-2", 40)).as_deref(),
            Some("b-2:40")
        );
        for bad in [
            "weft/dev/c/exit/07",
            "weft/dev/c/exit/-1",
            "weft/dev/c/exit/",
            "weft/dev/C/exit/1",
            "weft/dev/c/call/1",
            "weft/dev/c/exit/1/2",
            "weft/dev/c/exit/99999999999",
        ] {
            assert_eq!(pid_of_process_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn fabric_addresses_and_sockets_have_one_spelling() {
        let v4: IpAddr = "10.77.0.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(fabric_ip("a", v4), "weft/dev/a/ip/10.77.0.1");
        assert_eq!(of_fabric_ip(&fabric_ip("a-1", v4)), Some(("a-1", v4)));
        assert_eq!(of_fabric_ip(&fabric_ip("b", v6)), Some(("b", v6)));
        for bad in [
            "weft/dev/A/ip/10.0.0.1",
            "weft/dev/a/ip/010.0.0.1",
            "weft/dev/a/ip/fd00:0::1",
            "weft/dev/a/ip/",
            "weft/dev/a/ip/x",
            "weft/dev/a/udp/1",
        ] {
            assert_eq!(of_fabric_ip(bad), None, "{bad}");
        }
        assert_eq!(udp_id("a", &udp("a", 42)), Some(42));
        for bad in [
            "weft/dev/b/udp/1",
            "weft/dev/ab/udp/1",
            "weft/dev/a/udp/01",
            "weft/dev/a/udp/-1",
            "weft/dev/a/udp/",
            "weft/dev/a/udp/1/2",
        ] {
            assert_eq!(udp_id("a", bad), None, "{bad}");
        }
    }
}
