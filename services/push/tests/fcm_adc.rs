//! FCM with Application Default Credentials, configured as an operator would
//! (`CHAT_FCM_APPLICATION_DEFAULT`): the credentials come from the file named by
//! `GOOGLE_APPLICATION_CREDENTIALS`, the project from them, and the fake FCM checks the
//! OAuth assertion and the send as Google would. (The other ADC sources, gcloud's user
//! credentials and the metadata server, are the library's and cannot run here.)

use clap::Parser;

use chat_protocol::PushPlatform;
use chat_push::providers::{Notification, ProviderSettings};
use chat_store::PushDevice;
use chat_test_push_fakes::FakeFcm;

const FCM_KEY: &str = include_str!("fixtures/fcm-test-key.pem");
const FCM_PUBLIC: &str = include_str!("fixtures/fcm-test-key.pub.pem");

#[derive(Parser)]
struct Settings {
    #[command(flatten)]
    providers: ProviderSettings,
}

#[tokio::test]
async fn application_default_credentials_reach_fcm() {
    let fcm = FakeFcm::start(FCM_PUBLIC, "push@adc-project.iam.gserviceaccount.com").await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("adc.json");
    std::fs::write(&key_file, fcm.service_account_json("adc-project", FCM_KEY)).unwrap();
    // This test binary's only test: nothing else reads the environment meanwhile.
    std::env::set_var("GOOGLE_APPLICATION_CREDENTIALS", &key_file);

    let settings = Settings::parse_from([
        "chat-push",
        "--fcm-application-default",
        "--fcm-endpoint",
        &fcm.url,
    ]);
    let providers = settings.providers.build().await.expect("FCM from ADC");
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0].platform(), PushPlatform::Fcm);
    let device = PushDevice {
        user_id: "bob".into(),
        device_id: "pixel".into(),
        platform: PushPlatform::Fcm,
        token: "adc-token".into(),
    };
    let notification = Notification {
        chat_id: "c".into(),
        seq: 1,
        title: None,
        body: "New message".into(),
        badge: 1,
    };
    providers[0].send(&device, &notification).await.unwrap();
    let delivered = fcm.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0].project, "adc-project",
        "the credentials' project"
    );
    assert_eq!(delivered[0].message["token"], "adc-token");
    assert!(fcm.rejected().is_empty(), "{:?}", fcm.rejected());
    assert_eq!(fcm.tokens_issued(), 1);
}
