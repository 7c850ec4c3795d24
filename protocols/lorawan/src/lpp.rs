//! Cayenne LPP payload decoding into ChirpStack's `object` shape (`{"temperatureSensor":
//! {"3": 27.2}, ...}`), for devices with `payload_codec = "cayenne_lpp"`. A malformed payload
//! gives no object.

use serde_json::{Map, Value, json};

fn i16_at(b: &[u8]) -> f64 {
    f64::from(i16::from_be_bytes([b[0], b[1]]))
}

fn i24_at(b: &[u8]) -> f64 {
    let v = i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8;
    f64::from(v)
}

pub fn decode(mut b: &[u8]) -> Option<Value> {
    let mut out = Map::new();
    while !b.is_empty() {
        let [channel, kind, rest @ ..] = b else { return None };
        let (name, len): (&str, usize) = match kind {
            0 => ("digitalInput", 1),
            1 => ("digitalOutput", 1),
            2 => ("analogInput", 2),
            3 => ("analogOutput", 2),
            101 => ("illuminanceSensor", 2),
            102 => ("presenceSensor", 1),
            103 => ("temperatureSensor", 2),
            104 => ("humiditySensor", 1),
            113 => ("accelerometer", 6),
            115 => ("barometer", 2),
            134 => ("gyrometer", 6),
            136 => ("gpsLocation", 9),
            _ => return None,
        };
        let v = rest.get(..len)?;
        let value = match kind {
            0 | 1 | 102 => json!(v[0]),
            2 | 3 => json!(i16_at(v) / 100.0),
            101 => json!(u16::from_be_bytes([v[0], v[1]])),
            103 => json!(i16_at(v) / 10.0),
            104 => json!(f64::from(v[0]) / 2.0),
            113 => json!({"x": i16_at(&v[0..]) / 1000.0, "y": i16_at(&v[2..]) / 1000.0, "z": i16_at(&v[4..]) / 1000.0}),
            115 => json!(f64::from(u16::from_be_bytes([v[0], v[1]])) / 10.0),
            134 => json!({"x": i16_at(&v[0..]) / 100.0, "y": i16_at(&v[2..]) / 100.0, "z": i16_at(&v[4..]) / 100.0}),
            _ => {
                json!({"latitude": i24_at(&v[0..]) / 10_000.0, "longitude": i24_at(&v[3..]) / 10_000.0, "altitude": i24_at(&v[6..]) / 100.0})
            }
        };
        let entry = out.entry(name).or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(channel.to_string(), value);
        }
        b = &rest[len..];
    }
    Some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cayenne_examples() {
        // The LPP documentation's examples: two temperatures, then accelerometer.
        let v = super::decode(&[0x03, 0x67, 0x01, 0x10, 0x05, 0x67, 0x00, 0xff]).unwrap();
        assert_eq!(v, serde_json::json!({"temperatureSensor": {"3": 27.2, "5": 25.5}}));
        let v = super::decode(&[0x06, 0x71, 0x04, 0xd2, 0xfb, 0x2e, 0x00, 0x00]).unwrap();
        assert_eq!(v, serde_json::json!({"accelerometer": {"6": {"x": 1.234, "y": -1.234, "z": 0.0}}}));
        assert_eq!(super::decode(&[0x01, 0x67, 0x01]), None);
        assert_eq!(super::decode(&[0x01, 0xee]), None);
    }
}
