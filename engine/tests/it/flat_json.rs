//! The one-pass JSON decoder against arrow-json's decoder as the oracle: over generated chunks
//! (fields in any order, missing and extra fields, nested values, nulls, escapes, unicode, numbers
//! in many forms, whitespace, wrong types, broken records) it either declines or produces exactly
//! arrow-json's batch; and it does not decline ordinary ticks.

use std::cell::Cell;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::ReaderBuilder;
use engine::connector::flat_json::FlatJsonDecoder;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::SeedableRng;
use rand::seq::SliceRandom;

/// The generated schema's columns: the ticks' own and one of every other decoded type.
const COLUMNS: [(&str, DataType); 7] = [
    ("symbol", DataType::Utf8),
    ("price", DataType::Float64),
    ("day_volume", DataType::Int64),
    ("timestamp", DataType::Int64),
    ("qty", DataType::Int32),
    ("halted", DataType::Boolean),
    ("note", DataType::Utf8),
];

fn schema(columns: &[(&str, DataType)], nullable: &[bool]) -> SchemaRef {
    let fields: Vec<Field> = columns
        .iter()
        .zip(nullable)
        .map(|((name, data_type), nullable)| Field::new(*name, data_type.clone(), *nullable))
        .collect();
    Arc::new(Schema::new(fields))
}

/// arrow-json's batch, each record fed on its own as the Kafka source does (exactly one object
/// each), and the same records as newline-separated lines as the filesystem source does.
fn arrow_json(schema: &SchemaRef, records: &[Vec<u8>]) -> Result<RecordBatch, ArrowError> {
    let build = || ReaderBuilder::new(Arc::clone(schema)).with_batch_size(records.len() + 1);
    let mut decoder = build().build_decoder()?;
    for (index, record) in records.iter().enumerate() {
        let mut consumed = 0;
        while consumed < record.len() {
            match decoder.decode(&record[consumed..])? {
                0 => return Err(ArrowError::JsonError("more than one object".into())),
                n => consumed += n,
            }
        }
        if decoder.has_partial_record() || decoder.len() != index + 1 {
            return Err(ArrowError::JsonError(format!("record {index} is not one object")));
        }
    }
    let batch = decoder.flush()?.unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(schema)));
    let mut lines = build().build_decoder()?;
    lines.decode(&records.join(&b'\n'))?;
    let lines = lines.flush()?.unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(schema)));
    if lines != batch {
        return Err(ArrowError::JsonError("lines and messages differ".into()));
    }
    Ok(batch)
}

fn fast(schema: &SchemaRef, records: &[Vec<u8>]) -> Option<RecordBatch> {
    let decoder = FlatJsonDecoder::new(Arc::clone(schema)).expect("every column type is decoded");
    decoder.decode(records.iter().map(Vec::as_slice))
}

/// A JSON string: plain text, valid and invalid escapes, raw and escaped unicode, raw controls.
fn string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        12 => "[a-zA-Z0-9 .:-]{1,6}",
        1 => Just(r#"\""#.to_string()),
        1 => Just(r"\\".to_string()),
        1 => Just(r"\/".to_string()),
        1 => prop::sample::select(vec![r"\b", r"\f", r"\n", r"\r", r"\t"]).prop_map(String::from),
        1 => prop::sample::select(vec!["é", "€", "😀", "日本", "\t", "\u{1}"]).prop_map(String::from),
        1 => prop::sample::select(vec![
            r"\u00e9", r"\u20AC", r"\ud83d\ude00", r"\u0041", r"\u0000", r"\ud800", r"\udc00x",
            r"\u12", r"\x", r"\'", r"\U0041",
        ])
        .prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..5).prop_map(|pieces| format!("\"{}\"", pieces.concat()))
}

/// Whole numbers: ordinary, at and beyond the i32 and i64 limits, and non-strict spellings.
fn integer() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (-100_000i64..100_000).prop_map(|v| v.to_string()),
        3 => any::<i64>().prop_map(|v| v.to_string()),
        2 => any::<i32>().prop_map(|v| v.to_string()),
        1 => prop::sample::select(vec![
            "0", "-0", "007", "-01", "9223372036854775807", "-9223372036854775808",
            "9223372036854775808", "-9223372036854775809", "2147483647", "-2147483648",
            "2147483648", "18446744073709551616", "1e3", "1E3", "1.0", "1.5", "-2.5e1", "+1",
            "1_000", "0x1F", "--1", "1-2",
        ])
        .prop_map(String::from),
        1 => "-?[1-9][0-9]{15,25}",
    ]
}

/// Numbers with fractions and exponents, small and huge, short and long, strict and not.
fn float() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (-1e6f64..1e6).prop_map(|v| format!("{:.3}", v)),
        2 => any::<f64>().prop_filter("finite", |v| v.is_finite()).prop_map(|v| v.to_string()),
        2 => any::<f64>().prop_filter("finite", |v| v.is_finite()).prop_map(|v| format!("{v:e}")),
        1 => any::<f32>().prop_filter("finite", |v| v.is_finite()).prop_map(|v| format!("{v:E}")),
        3 => "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?",
        1 => prop::sample::select(vec![
            "1e308", "1.7976931348623157e308", "1.7976931348623159e308", "1e309", "-1e400",
            "5e-324", "2e-324", "1e-400", "-0.0", "0.0", "0e0", "9007199254740993",
            "9007199254740993.0", "123456789012345678901234567890", "0.1e-22", "1e22", "1e23",
            "1.", ".5", "1e", "1e+", "1.5.3", "Infinity", "-Infinity", "NaN", "1ee5", "01.5",
        ])
        .prop_map(String::from),
    ]
}

/// Any value: scalars of every type, numbers in strings, broken literals, nested values.
fn any_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        3 => string(),
        2 => integer(),
        2 => float(),
        2 => prop::sample::select(vec!["true", "false", "null"]).prop_map(String::from),
        1 => prop::sample::select(vec!["tru", "nul", "nulll", "True", "falsey", "\"12\"", "\"1.5\"", "\"true\"", ""]).prop_map(String::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[a-z]{0,3}", inner), 0..4).prop_map(|members| {
                let members: Vec<String> =
                    members.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
            Just("[1,]".to_string()),
            Just("{\"a\":1,}".to_string()),
            Just("[1 2]".to_string()),
            Just("{\"a\" 1}".to_string()),
        ]
    })
}

/// A value of the column's own type.
fn typed(data_type: &DataType) -> BoxedStrategy<String> {
    match data_type {
        DataType::Utf8 => string().boxed(),
        DataType::Int64 => integer().boxed(),
        DataType::Int32 => prop_oneof![any::<i32>().prop_map(|v| v.to_string()), integer()].boxed(),
        DataType::Float64 => prop_oneof![2 => float(), 1 => integer()].boxed(),
        _ => prop::sample::select(vec!["true", "false"]).prop_map(String::from).boxed(),
    }
}

/// One declared column as a member: its own type mostly, sometimes null, absent or anything.
fn member(name: &str, data_type: &DataType) -> impl Strategy<Value = Option<(String, String)>> {
    let value = prop_oneof![
        10 => typed(data_type),
        1 => Just("null".to_string()),
        1 => any_value(),
    ];
    let name = name.to_string();
    prop_oneof![
        10 => value.prop_map(move |v| Some((name.clone(), v))),
        1 => Just(None),
    ]
}

/// A key the schema does not declare, or one that spells a declared key (escaped or again).
fn extra_key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z_]{0,10}",
        1 => prop::sample::select(vec![
            r"sym\u0062ol", r"pr\u0069ce", r#"a\"b"#, r"a\\b", "é", "Symbol", "price ", "symbol",
            "timestamp", "halted",
        ])
        .prop_map(String::from),
    ]
}

const WHITESPACE: [&str; 8] = ["", "", "", " ", "\t", "\n", "\r\n", "  "];

/// One record, usually an object with its members in any order, sometimes broken.
fn record() -> impl Strategy<Value = Vec<u8>> {
    let declared: Vec<_> =
        COLUMNS.iter().map(|(name, data_type)| member(name, data_type)).collect();
    let extras = prop::collection::vec((extra_key(), any_value()), 0..4);
    let members = (declared, extras).prop_flat_map(|(declared, extras)| {
        Just(declared.into_iter().flatten().chain(extras).collect::<Vec<_>>()).prop_shuffle()
    });
    let spaces = prop::collection::vec(prop::sample::select(WHITESPACE.to_vec()), 64);
    (members, spaces, mutation(), any::<u64>()).prop_map(|(members, spaces, mutation, cut)| {
        let mut ws = spaces.into_iter().cycle();
        let mut text = format!("{}{{", ws.next().unwrap());
        for (i, (key, value)) in members.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let [a, b, c, d] = [(); 4].map(|()| ws.next().unwrap());
            text.push_str(&format!("{comma}{a}\"{key}\"{b}:{c}{value}{d}"));
        }
        text.push_str(&format!("}}{}", ws.next().unwrap()));
        mutation.apply(text.into_bytes(), cut)
    })
}

/// Damage done to a record.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    Truncate,
    Append(&'static str),
    Replace(&'static str),
    InvalidUtf8,
}

impl Mutation {
    fn apply(&self, mut record: Vec<u8>, cut: u64) -> Vec<u8> {
        match self {
            Mutation::None => {}
            Mutation::Truncate => record.truncate(cut as usize % (record.len() + 1)),
            Mutation::Append(tail) => record.extend_from_slice(tail.as_bytes()),
            Mutation::Replace(with) => record = with.as_bytes().to_vec(),
            Mutation::InvalidUtf8 => {
                let at = cut as usize % record.len().max(1);
                record.insert(at.min(record.len()), 0xFF);
            }
        }
        record
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        40 => Just(Mutation::None),
        2 => Just(Mutation::Truncate),
        1 => Just(Mutation::InvalidUtf8),
        2 => prop::sample::select(vec!["x", "}", ",", "{}", " {\"qty\":1}", "\u{0}", "\u{c}", "0"])
            .prop_map(Mutation::Append),
        2 => prop::sample::select(vec![
            "", " ", "null", "[1,2]", "42", "\"s\"", "{}", "{,}", "{\"symbol\":\"A\",,\"price\":1}",
            "{\"symbol\":\"A\" \"price\":1}", "{\"symbol\":\"A\",\"price\":1,}", "{\"a\":1}{\"b\":2}",
            "{\"symbol\":\"A\"}\n{\"symbol\":\"B\"}", "\u{feff}{}", "{\"symbol\":\"A\",\"price\":1}",
        ])
        .prop_map(Mutation::Replace),
    ]
}

#[test]
fn fast_decoder_equals_arrow_json_or_declines() {
    const CASES: u32 = 3_000;
    let mut runner =
        TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() });
    let accepted = Cell::new(0u32);
    let strategy = (prop::array::uniform7(any::<bool>()), prop::collection::vec(record(), 0..4));
    runner
        .run(&strategy, |(nullable, records)| {
            let schema = schema(&COLUMNS, &nullable);
            if let Some(batch) = fast(&schema, &records) {
                let oracle = arrow_json(&schema, &records);
                prop_assert!(
                    oracle.is_ok(),
                    "arrow-json fails where the fast decoder did not: {oracle:?}"
                );
                prop_assert_eq!(batch, oracle.expect("checked"));
                accepted.set(accepted.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    // The property says little if nearly everything is declined.
    assert!(accepted.get() > CASES / 5, "only {} of {CASES} chunks accepted", accepted.get());
}

const TICK: [(&str, &str); 10] = [
    ("event", "\"price\""),
    ("symbol", "\"SIM0101\""),
    ("currency", "\"USD\""),
    ("type", "\"Common Stock\""),
    ("exchange", "\"NYSE\""),
    ("mic_code", "\"XNYS\""),
    ("timestamp", "1714570200"),
    ("price", "196.723"),
    ("day_volume", "854934"),
    ("name", "\"Apple Inc\""),
];

#[test]
fn ordinary_ticks_are_not_declined() {
    let ticks = schema(
        &[
            ("symbol", DataType::Utf8),
            ("price", DataType::Float64),
            ("day_volume", DataType::Int64),
            ("timestamp", DataType::Int64),
        ],
        &[false, false, true, false],
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut records = vec![];
    for round in 0..200 {
        let mut fields: Vec<_> = TICK[..9].to_vec();
        if round > 0 {
            fields.shuffle(&mut rng);
        }
        if round % 3 == 1 {
            fields.retain(|(name, _)| *name != "day_volume");
        }
        let members: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        records.push(format!("{{{}}}", members.join(",")).into_bytes());
    }
    let batch = fast(&ticks, &records).expect("ordinary ticks are decoded by the fast decoder");
    assert_eq!(batch, arrow_json(&ticks, &records).unwrap());
    assert_eq!(batch.num_rows(), 200);
    assert_eq!(batch.column(2).null_count(), 67);
}

#[test]
fn subtle_records_are_declined() {
    let schema = schema(&COLUMNS[..4], &[false, false, true, false]);
    let base = r#""symbol":"A","price":1.5,"timestamp":1"#;
    for record in [
        format!(r#"{{{base},"day_volume":"12"}}"#),
        format!(r#"{{{base},"day_volume":1.0}}"#),
        format!(r#"{{{base},"day_volume":1e3}}"#),
        format!(r#"{{{base},"day_volume":9223372036854775808}}"#),
        format!(r#"{{{base},"sym\u0062ol":"B"}}"#),
        format!(r#"{{{base},"x":"\u00e9"}}"#),
        format!(r#"{{{base},"symbol":"B"}}"#),
        format!(r#"{{{base},,"x":1}}"#),
        format!(r#"{{{base}}} x"#),
        format!(r#"{{{base}}}{{{base}}}"#),
        r#"{"symbol":"A","timestamp":1}"#.to_string(),
        r#"{"symbol":null,"price":1.5,"timestamp":1}"#.to_string(),
        r#"{"symbol":"A","price":1.5e999,"timestamp":1}"#.to_string(),
        String::new(),
        "null".to_string(),
    ] {
        assert!(fast(&schema, &[record.clone().into_bytes()]).is_none(), "accepted {record}");
    }
}

#[test]
fn escapes_and_whitespace_are_decoded() {
    let schema = schema(&COLUMNS[..4], &[true, false, true, false]);
    let records: Vec<Vec<u8>> = [
        " {\t\"symbol\" : \"a\\\"b\\\\c\\/d\\n\\te\\u0000f\" ,\"price\":-0.0,\"timestamp\":-9223372036854775808 } ",
        r#"{"timestamp":0,"extra":{"a":[1,{"b":null}],"c":"é\"}"},"price":12345678901234567890.5e-3,"symbol":null}"#,
    ]
    .iter()
    .map(|r| r.as_bytes().to_vec())
    .collect();
    // "\u0000" is declined; without it the first record decodes.
    assert!(fast(&schema, &records).is_none());
    let records: Vec<Vec<u8>> =
        records.iter().map(|r| String::from_utf8_lossy(r).replace("\\u0000", "").into()).collect();
    let batch = fast(&schema, &records).expect("decoded");
    assert_eq!(batch, arrow_json(&schema, &records).unwrap());
}
