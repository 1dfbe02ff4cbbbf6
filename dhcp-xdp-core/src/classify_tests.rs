//! Expressions as Kea writes them, against packets made here; values as Kea's documentation
//! and its token tests give them.

use super::*;

#[derive(Default)]
struct Pkt {
    options: Vec<(u8, Vec<u8>)>,
    relay: Vec<(u8, Vec<u8>)>,
    mac: Vec<u8>,
    giaddr: [u8; 4],
    msgtype: u8,
}

impl Packet for Pkt {
    fn mac(&self) -> &[u8] {
        &self.mac
    }
    fn option(&self, code: u8) -> Option<&[u8]> {
        self.options.iter().find(|(c, _)| *c == code).map(|(_, v)| v.as_slice())
    }
    fn relay_option(&self, code: u8) -> Option<&[u8]> {
        self.relay.iter().find(|(c, _)| *c == code).map(|(_, v)| v.as_slice())
    }
    fn field(&self, f: Field4, out: &mut [u8; 16]) -> usize {
        let v: Vec<u8> = match f {
            Field4::Mac => self.mac.clone(),
            Field4::Hlen => (self.mac.len() as u32).to_be_bytes().to_vec(),
            Field4::Htype => 1u32.to_be_bytes().to_vec(),
            Field4::Giaddr => self.giaddr.to_vec(),
            Field4::Msgtype => u32::from(self.msgtype).to_be_bytes().to_vec(),
            _ => vec![0; 4],
        };
        out[..v.len()].copy_from_slice(&v);
        v.len()
    }
}

fn eval(src: &str, p: &Pkt) -> bool {
    let e = Expr::parse(src, &["iptv".into(), "cpe".into()]).unwrap_or_else(|e| panic!("{src}: {e}"));
    let classes = Classes { bits: 0b01, known: false };
    let mut ev = Evaluator::default();
    let got = ev.eval(&e, p, classes);
    // The tree (where the test has its shape) and the stack agree.
    assert_eq!(got, ev.eval_stack(&e, p, classes), "{src}: tree and stack disagree");
    got
}

fn err(src: &str) -> ExprError {
    Expr::parse(src, &["iptv".into()]).expect_err(src)
}

fn stb() -> Pkt {
    Pkt {
        options: vec![
            (60, b"IPTVBX-2000".to_vec()),
            (93, vec![0, 7]),
            (12, b"Living-Room".to_vec()),
            (54, vec![198, 18, 0, 1]),
        ],
        relay: vec![(1, b"olt1/1/1:7".to_vec()), (2, vec![0xde, 0xad])],
        mac: vec![0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e],
        giaddr: [198, 19, 0, 1],
        msgtype: 1,
    }
}

#[test]
fn the_issues_examples_hold() {
    let p = stb();
    assert!(eval("substring(option[60].hex,0,6) == 'IPTVBX'", &p));
    assert!(!eval("substring(option[60].hex,0,6) == 'CPEBOX'", &p));
    assert!(eval("option[93].exists", &p));
    assert!(!eval("option[43].exists", &p));
    assert!(eval("option[vendor-class-identifier].text == 'IPTVBX-2000'", &p));
}

#[test]
fn values_are_what_kea_makes_of_them() {
    let p = stb();
    assert!(eval("pkt4.mac == 0x001a2b3c4d5e", &p));
    assert!(eval("substring(pkt4.mac, 0, 3) == 0x001a2b", &p), "a MAC prefix (OUI)");
    assert!(eval("pkt4.giaddr == 198.19.0.1", &p));
    assert!(eval("pkt4.msgtype == 1", &p), "integers are 4 bytes in network order");
    assert!(eval("pkt4.hlen == 6 and pkt4.htype == 1", &p));
    assert!(eval("relay4[1].hex == 'olt1/1/1:7'", &p));
    assert!(eval("relay4[2].exists and not relay4[6].exists", &p));
    assert!(eval("relay4[6].hex == ''", &p), "an absent option is the empty string");
    assert!(eval("option[54].text == '198.18.0.1'", &p));
    assert!(eval("hexstring(pkt4.mac, ':') == '00:1a:2b:3c:4d:5e'", &p));
    assert!(eval("concat('IPTV', 'BX') == substring(option[60].hex, 0, 6)", &p));
    assert!(eval("'IPTV' + 'BX' + '-2000' == option[60].hex", &p));
    assert!(eval("lcase(option[12].text) == 'living-room' and ucase('a') == 'A'", &p));
    assert!(eval("ifelse(option[93].exists, 'pxe', 'other') == 'pxe'", &p));
    assert!(eval("0x1 == 0x01", &p), "an odd digit count has an implied leading zero");
}

#[test]
fn substring_follows_kea() {
    // The examples of Kea's manual (the classification chapter), and the edges.
    let cases: &[(i32, Option<i32>, &str)] = &[
        (0, Some(3), "foo"),
        (3, None, "bar"),
        (1, Some(4), "ooba"),
        (-5, Some(4), "ooba"),
        (-1, Some(-3), "oba"),
        (4, Some(-2), "ob"),
        (10, Some(2), ""),
        (2, Some(-5), "fo"),
        (-7, Some(1), ""),
        (1, Some(100), "oobar"),
        (0, Some(0), ""),
    ];
    for (start, len, want) in cases {
        let (s, n) = substring(6, *start, *len);
        assert_eq!(&"foobar"[s..s + n], *want, "substring('foobar', {start}, {len:?})");
        let len_src = len.map_or("all".to_string(), |l| l.to_string());
        let src = format!("substring('foobar', {start}, {len_src}) == '{want}'");
        assert!(eval(&src, &Pkt::default()), "{src}");
    }
}

#[test]
fn booleans_nest_with_kea_precedence() {
    let p = stb();
    // and binds tighter than or; not tighter than and.
    assert!(eval("option[43].exists and option[93].exists or option[60].exists", &p));
    assert!(!eval("option[43].exists and (option[93].exists or option[60].exists)", &p));
    assert!(eval("not option[43].exists and option[93].exists", &p));
    assert!(eval("((option[93].exists))", &p));
    assert!(eval("(substring(option[60].hex, 0, 4)) == 'IPTV'", &p), "a parenthesised value compared");
    assert!(eval("member('iptv') and not member('cpe')", &p));
    assert!(eval("member('UNKNOWN') and not member('KNOWN')", &p));
}

#[test]
fn errors_name_the_column() {
    let e = err("option[60].hex == 'x' and");
    assert_eq!(e.column, 26, "{e}");
    let e = err("option[60].hex = 'x'");
    assert_eq!(e.column, 16, "{e}");
    let e = err("member('nobody')");
    assert!(e.message.contains("'nobody' is not defined"), "{e}");
    assert_eq!(e.column, 8);
    let e = err("relay6[0].option[37].hex == 'x'");
    assert!(e.message.contains("not supported"), "{e}");
    assert_eq!(e.column, 1);
    let e = err("option[300].hex == 'x'");
    assert!(e.message.contains("0 to 255"), "{e}");
    let e = err("option[43].text == 'x'");
    assert!(e.message.contains("use .hex"), "{e}");
    let e = err("'unterminated");
    assert!(e.message.contains("unterminated"), "{e}");
    let e = err("option[60].hex");
    assert!(e.message.contains("=="), "a value where a condition is needed: {e}");
    let e = err("option[60].exists == 'x'");
    assert!(e.column >= 19, "{e}");
    // Nested to the right, every level waits on the stack.
    let deep = "concat('a',".repeat(20) + "'z'" + &")".repeat(20) + " == 'x'";
    assert!(Expr::parse(&(0..8).map(|_| "concat(").collect::<String>(), &[]).is_err());
    let e = err(&deep);
    assert!(e.message.contains("deeper"), "{e}");
    let e = err("option[no-such-name].exists");
    assert!(e.message.contains("unknown option name"), "{e}");
}

#[test]
fn evaluation_allocates_nothing_once_warm() {
    // The stack is an array; the arena keeps its capacity: the same evaluation twice leaves it
    // unmoved.
    let e = Expr::parse("hexstring(pkt4.mac, ':') + option[12].hex == 'x' or option[54].text == '198.18.0.1'", &[])
        .unwrap();
    let mut ev = Evaluator::default();
    let p = stb();
    assert!(ev.eval(&e, &p, Classes::default()));
    let arena = ev.arena.as_ptr();
    assert!(ev.eval(&e, &p, Classes::default()));
    assert_eq!(ev.arena.as_ptr(), arena);
}

#[test]
fn common_shapes_take_the_tree() {
    for src in [
        "substring(option[60].hex,0,6) == 'IPTVBX'",
        "option[93].exists and not member('iptv')",
        "relay4[1].hex == 'olt1/1/1:7' or substring(pkt4.mac, 0, 3) == 0x001a2b",
        "'IPTVBX' == substring(option[60].hex, 0, 6)",
    ] {
        assert!(Expr::parse(src, &["iptv".into()]).unwrap().fast.is_some(), "{src}");
    }
    for src in ["concat('a', 'b') == 'ab'", "pkt4.giaddr == 198.19.0.1", "lcase(option[12].text) == 'x'"] {
        assert!(Expr::parse(src, &[]).unwrap().fast.is_none(), "{src}");
    }
}
