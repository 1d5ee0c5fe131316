//! Status webhooks to tenants (issue 15): what Herald sends out, as opposed to
//! `crate::webhook`, which is what providers send in. The signing secret and how it is
//! kept (`secret`), the Standard Webhooks signature (`signature`), and the rules an
//! endpoint's URL must pass when it is registered and again when it is called
//! (`url_rules`), one delivery attempt (`deliver`), the events and their retry schedule
//! (`events`), and one event's attempt to each endpoint that takes it (`dispatch`).
//! The pipeline (issue 15): the table's stream as Lambda hands it over
//! (`stream_event`) and one delivery on the deliveries queue (`job`).

pub mod deliver;
pub mod dispatch;
pub mod events;
pub mod job;
pub mod secret;
pub mod signature;
pub mod stream_event;
pub mod url_rules;
