//! Pub/sub routing: who listens to which channel and pattern.
//!
//! Every connection owns an unbounded channel of [`Reply`] messages; the registry keeps the
//! sending side per subscription. `PUBLISH` runs under the engine lock like every command and
//! only queues messages, so it never waits on a slow subscriber (Redis bounds such clients
//! with `client-output-buffer-limit pubsub`, which keeper does not have yet).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;

use crate::resp::Reply;

/// Sending side of a connection's message queue.
pub(crate) type Mailbox = UnboundedSender<Reply>;

#[derive(Default)]
pub(crate) struct PubSub {
    /// Channel → subscribers by client id (ordered: delivery order is stable).
    channels: HashMap<Bytes, BTreeMap<u64, Mailbox>>,
    /// Pattern → subscribers.
    patterns: BTreeMap<Bytes, BTreeMap<u64, Mailbox>>,
}

impl PubSub {
    /// Adds `client` to `channel`; false if it was already there.
    pub fn subscribe(&mut self, channel: &Bytes, client: u64, mailbox: &Mailbox) -> bool {
        add(
            self.channels.entry(channel.clone()).or_default(),
            client,
            mailbox,
        )
    }

    /// Removes `client` from `channel`; false if it was not there.
    pub fn unsubscribe(&mut self, channel: &[u8], client: u64) -> bool {
        let Some(subscribers) = self.channels.get_mut(channel) else {
            return false;
        };
        let (removed, now_empty) = remove(subscribers, client);
        if now_empty {
            self.channels.remove(channel);
        }
        removed
    }

    /// Adds `client` to `pattern`; false if it was already there.
    pub fn psubscribe(&mut self, pattern: &Bytes, client: u64, mailbox: &Mailbox) -> bool {
        add(
            self.patterns.entry(pattern.clone()).or_default(),
            client,
            mailbox,
        )
    }

    /// Removes `client` from `pattern`; false if it was not there.
    pub fn punsubscribe(&mut self, pattern: &[u8], client: u64) -> bool {
        let Some(subscribers) = self.patterns.get_mut(pattern) else {
            return false;
        };
        let (removed, now_empty) = remove(subscribers, client);
        if now_empty {
            self.patterns.remove(pattern);
        }
        removed
    }

    /// Removes `client` from every channel and pattern (a connection closed by `CLIENT KILL`
    /// stops receiving at once, before its task cleans up).
    pub fn forget(&mut self, client: u64) {
        self.channels.retain(|_, subscribers| {
            subscribers.remove(&client);
            !subscribers.is_empty()
        });
        self.patterns.retain(|_, subscribers| {
            subscribers.remove(&client);
            !subscribers.is_empty()
        });
    }

    /// Delivers `message` to the subscribers of `channel` and of every matching pattern.
    /// Messages for `publisher` itself are returned instead of queued, so they come before
    /// the `PUBLISH` reply as in Redis. Returns the number of receivers.
    pub fn publish(&self, channel: &Bytes, message: &Bytes, publisher: u64) -> (i64, Vec<Reply>) {
        let mut receivers = 0;
        let mut own = Vec::new();
        if let Some(subscribers) = self.channels.get(channel) {
            for (&id, mailbox) in subscribers {
                let push = Reply::Push(vec![
                    Reply::bulk("message"),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(message.clone()),
                ]);
                receivers += 1;
                if id == publisher {
                    own.push(push);
                } else {
                    // A closed mailbox belongs to a connection being torn down: it still
                    // counts, as Redis counts a client until it is freed.
                    let _ = mailbox.send(push);
                }
            }
        }
        for (pattern, subscribers) in &self.patterns {
            if !crate::glob::matches(pattern, channel, false) {
                continue;
            }
            for (&id, mailbox) in subscribers {
                let push = Reply::Push(vec![
                    Reply::bulk("pmessage"),
                    Reply::Bulk(pattern.clone()),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(message.clone()),
                ]);
                receivers += 1;
                if id == publisher {
                    own.push(push);
                } else {
                    let _ = mailbox.send(push);
                }
            }
        }
        (receivers, own)
    }

    /// Channels with at least one subscriber (`pubsub_channels`).
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Patterns with at least one subscriber (`pubsub_patterns`).
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// Active channels matching `pattern` (all when `None`): `PUBSUB CHANNELS`.
    pub fn channels_matching(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let mut names: Vec<Bytes> = self
            .channels
            .keys()
            .filter(|c| pattern.is_none_or(|p| crate::glob::matches(p, c, false)))
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Subscribers of `channel`: `PUBSUB NUMSUB`.
    pub fn subscribers(&self, channel: &[u8]) -> usize {
        self.channels.get(channel).map_or(0, BTreeMap::len)
    }
}

/// Adds a subscriber; false if it was already there.
fn add(subscribers: &mut BTreeMap<u64, Mailbox>, client: u64, mailbox: &Mailbox) -> bool {
    subscribers.insert(client, mailbox.clone()).is_none()
}

/// Removes a subscriber: (was it there, is the list now empty and to be dropped).
fn remove(subscribers: &mut BTreeMap<u64, Mailbox>, client: u64) -> (bool, bool) {
    let removed = subscribers.remove(&client).is_some();
    (removed, subscribers.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_reaches_channels_and_patterns() {
        let mut pubsub = PubSub::default();
        let (tx1, mut rx1) = tokio::sync::mpsc::unbounded_channel();
        let (tx2, mut rx2) = tokio::sync::mpsc::unbounded_channel();
        let news = Bytes::from("news.tech");
        assert!(pubsub.subscribe(&news, 1, &tx1));
        assert!(!pubsub.subscribe(&news, 1, &tx1));
        assert!(pubsub.psubscribe(&Bytes::from("news.*"), 2, &tx2));
        let (n, own) = pubsub.publish(&news, &Bytes::from("hi"), 1);
        assert_eq!(n, 2);
        assert_eq!(own.len(), 1, "the publisher's own message is returned");
        assert!(rx1.try_recv().is_err());
        let Ok(Reply::Push(items)) = rx2.try_recv() else {
            panic!("no pmessage")
        };
        assert_eq!(items[0], Reply::bulk("pmessage"));
        assert_eq!(
            pubsub
                .publish(&Bytes::from("other"), &Bytes::from("x"), 9)
                .0,
            0
        );
        assert!(pubsub.unsubscribe(b"news.tech", 1));
        assert_eq!(pubsub.channel_count(), 0);
    }
}
