"""Provider simulators for the local stack and the tests: 254sms and SayaSMS."""
