//! Registered names of DNS numbers (IANA "Domain Name System (DNS)
//! Parameters"): resource record types, response codes, opcodes, and the
//! [`Mnemonic`] that shows a number by its name.
//!
//! Owns: number → mnemonic tables. Input: a number from the wire (the DNS
//! message's, or a Nucleus frame's). Output: a [`Mnemonic`], written as the
//! name when there is one and as the number otherwise. Does not: read DNS
//! messages. The sensor's DNS dissector and the Nucleus's receiver share
//! these tables, so a number on the wire comes back as the same name.

use serde::Serialize;

/// A DNS number with the registry it belongs to: written as the registered
/// name when there is one (`"AAAA"`, `"NXDOMAIN"`), the number otherwise.
/// Holding the number (not the name) makes every value representable on
/// the wire and rebuilt exactly from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mnemonic {
    registry: Registry,
    value: u16,
}

/// The IANA registry a [`Mnemonic`]'s number comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    /// Resource record types.
    RrType,
    /// Response codes (extended ones included).
    Rcode,
    /// Operation codes.
    Opcode,
}

impl Mnemonic {
    /// A number of `registry`.
    pub fn new(registry: Registry, value: u16) -> Self {
        Self { registry, value }
    }

    /// The number.
    pub fn value(self) -> u16 {
        self.value
    }

    /// The registry the number belongs to.
    pub fn registry(self) -> Registry {
        self.registry
    }

    /// The registered name, if the number has one.
    pub fn name(self) -> Option<&'static str> {
        match self.registry {
            Registry::RrType => rtype_name(self.value),
            Registry::Rcode => rcode_name(self.value),
            Registry::Opcode => opcode_name(self.value),
        }
    }
}

impl Serialize for Mnemonic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.name() {
            Some(name) => s.serialize_str(name),
            None => s.serialize_u16(self.value),
        }
    }
}

/// The OPT pseudo-record type (RFC 6891).
pub const OPT: u16 = 41;

/// The mnemonic of a resource record type (as in zone files and in
/// Suricata's `rrtype`).
pub fn rtype(t: u16) -> Mnemonic {
    Mnemonic::new(Registry::RrType, t)
}

/// The registered name of a resource record type.
pub fn rtype_name(t: u16) -> Option<&'static str> {
    Some(match t {
        1 => "A",
        2 => "NS",
        3 => "MD",
        4 => "MF",
        5 => "CNAME",
        6 => "SOA",
        7 => "MB",
        8 => "MG",
        9 => "MR",
        10 => "NULL",
        11 => "WKS",
        12 => "PTR",
        13 => "HINFO",
        14 => "MINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        19 => "X25",
        20 => "ISDN",
        21 => "RT",
        22 => "NSAP",
        23 => "NSAP-PTR",
        24 => "SIG",
        25 => "KEY",
        26 => "PX",
        27 => "GPOS",
        28 => "AAAA",
        29 => "LOC",
        30 => "NXT",
        31 => "EID",
        32 => "NIMLOC",
        33 => "SRV",
        34 => "ATMA",
        35 => "NAPTR",
        36 => "KX",
        37 => "CERT",
        38 => "A6",
        39 => "DNAME",
        40 => "SINK",
        41 => "OPT",
        42 => "APL",
        43 => "DS",
        44 => "SSHFP",
        45 => "IPSECKEY",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        49 => "DHCID",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        53 => "SMIMEA",
        55 => "HIP",
        56 => "NINFO",
        57 => "RKEY",
        58 => "TALINK",
        59 => "CDS",
        60 => "CDNSKEY",
        61 => "OPENPGPKEY",
        62 => "CSYNC",
        63 => "ZONEMD",
        64 => "SVCB",
        65 => "HTTPS",
        66 => "DSYNC",
        99 => "SPF",
        100 => "UINFO",
        101 => "UID",
        102 => "GID",
        103 => "UNSPEC",
        104 => "NID",
        105 => "L32",
        106 => "L64",
        107 => "LP",
        108 => "EUI48",
        109 => "EUI64",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        253 => "MAILB",
        254 => "MAILA",
        255 => "ANY",
        256 => "URI",
        257 => "CAA",
        258 => "AVC",
        259 => "DOA",
        260 => "AMTRELAY",
        261 => "RESINFO",
        32768 => "TA",
        32769 => "DLV",
        _ => return None,
    })
}

/// The mnemonic of a response code (RFC 1035, 2136, 6891 and later; the
/// extended codes need EDNS).
pub fn rcode(r: u16) -> Mnemonic {
    Mnemonic::new(Registry::Rcode, r)
}

/// The registered name of a response code.
pub fn rcode_name(r: u16) -> Option<&'static str> {
    Some(match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        11 => "DSOTYPENI",
        16 => "BADVERS",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        _ => return None,
    })
}

/// The mnemonic of an operation code.
pub fn opcode(op: u8) -> Mnemonic {
    Mnemonic::new(Registry::Opcode, u16::from(op))
}

/// The registered name of an operation code.
pub fn opcode_name(op: u16) -> Option<&'static str> {
    Some(match op {
        0 => "QUERY",
        1 => "IQUERY",
        2 => "STATUS",
        4 => "NOTIFY",
        5 => "UPDATE",
        6 => "DSO",
        _ => return None,
    })
}

/// True for an operation code in use (every registered one).
pub fn known_opcode(op: u8) -> bool {
    matches!(op, 0 | 1 | 2 | 4 | 5 | 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_serialise_as_before() {
        let v = [
            rtype(28),
            rtype(54),
            rcode(3),
            rcode(4000),
            opcode(5),
            opcode(3),
        ];
        let json = serde_json::to_string(&v).unwrap_or_default();
        assert_eq!(json, r#"["AAAA",54,"NXDOMAIN",4000,"UPDATE",3]"#);
    }
}
