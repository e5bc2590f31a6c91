//! The broker fixture gives a real broker; rdkafka produces to it and consumes back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use vintagelake_kafka::broker::Broker;

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_through_a_real_broker() {
    let broker = Broker::from_env_or_local().await.expect("a broker");
    if broker.is_local() {
        assert!(broker.bootstrap_servers().starts_with("127.0.0.1:"), "{}", broker.bootstrap_servers());
    }
    let topic = unique("smoke");
    broker.create_topics(&[&topic], 1).await.expect("create topic");

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    let sent: Vec<(String, String)> =
        (0..10).map(|i| (format!("SERIES{}", i % 3), format!(r#"{{"version":1,"n":{i}}}"#))).collect();
    for (key, payload) in &sent {
        producer
            .send(FutureRecord::to(&topic).key(key).payload(payload), Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)
            .expect("delivered");
    }

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", unique("smoke-group"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();

    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while received.len() < sent.len() {
        let m = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {} messages came back", received.len(), sent.len()))
            .expect("consume");
        received.push((
            String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
            String::from_utf8(m.payload().unwrap().to_vec()).unwrap(),
            m.offset(),
        ));
    }
    let got: Vec<_> = received.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect();
    assert_eq!(got, sent, "same messages, same order");
    let offsets: Vec<i64> = received.iter().map(|r| r.2).collect();
    assert_eq!(offsets, (0..10).collect::<Vec<_>>());
}
