pytest_plugins = ["tests.kafka_fixtures", "tests.figures", "tests.fake_admin_api"]
