pytest_plugins = ["tests.kafka_fixtures", "tests.figures"]
