//! Status webhooks to tenants (issue 15): what Herald sends out, as opposed to
//! `crate::webhook`, which is what providers send in. The signing secret and how it is
//! kept (`secret`), the Standard Webhooks signature (`signature`), and the rules an
//! endpoint's URL must pass when it is registered and again when it is called
//! (`url_rules`), one delivery attempt (`deliver`), the events and their retry schedule
//! (`events`), and one event's attempt to each endpoint that takes it (`dispatch`).

pub mod deliver;
pub mod dispatch;
pub mod events;
pub mod secret;
pub mod signature;
pub mod url_rules;
