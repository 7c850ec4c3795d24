//! The simulated device takes a firmware package in Block1 blocks, refuses it whole (its
//! buffer is one block), and reads it back in Block2 blocks.

use super::*;
use roost_coap::codec::Block;

fn opaque() -> (CoapOption, Vec<u8>) {
    (CoapOption::ContentFormat, codec::encode_uint(u32::from(format::OPAQUE)))
}

fn block(o: CoapOption, num: u32, more: bool, szx: u8) -> (CoapOption, Vec<u8>) {
    (o, codec::encode_uint(Block { num, more, szx }.encode()))
}

#[test]
fn a_package_in_blocks_is_written_whole_and_read_back_in_blocks() {
    let mut rig = Rig::registered(false);
    let package: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
    let r = rig.request(RequestType::Put, "/5/0/0", &[opaque()], &package, rig.at(1));
    assert_eq!((code(&r), codec::uint_option(&r, CoapOption::Size1)), ("4.13".into(), Some(Ok(1024))));

    let r = rig.request(
        RequestType::Put,
        "/5/0/0",
        &[opaque(), block(CoapOption::Block1, 0, true, 6)],
        &package[..1024],
        rig.at(2),
    );
    assert_eq!(
        (code(&r), Block::of(&r, CoapOption::Block1)),
        ("2.31".into(), Some(Ok(Block { num: 0, more: true, szx: 6 })))
    );
    assert_eq!(rig.get("/5/0/3", rig.at(2)).payload, b"0", "nothing written before the last block");
    let r = rig.request(
        RequestType::Put,
        "/5/0/0",
        &[opaque(), block(CoapOption::Block1, 1, false, 6)],
        &package[1024..],
        rig.at(2),
    );
    assert_eq!(
        (code(&r), Block::of(&r, CoapOption::Block1)),
        ("2.04".into(), Some(Ok(Block { num: 1, more: false, szx: 6 })))
    );
    assert_eq!(rig.get("/5/0/3", rig.at(2)).payload, b"2", "state: downloaded");

    let r0 = rig.get("/5/0/0", rig.at(3));
    assert_eq!(
        (code(&r0), Block::of(&r0, CoapOption::Block2)),
        ("2.05".into(), Some(Ok(Block { num: 0, more: true, szx: 6 })))
    );
    let r1 = rig.request(RequestType::Get, "/5/0/0", &[block(CoapOption::Block2, 1, false, 6)], b"", rig.at(3));
    assert_eq!(Block::of(&r1, CoapOption::Block2), Some(Ok(Block { num: 1, more: false, szx: 6 })));
    assert_eq!([r0.payload, r1.payload].concat(), package);
    assert!(rig.events().contains(&Event::Answered("2.31".into())));
}
