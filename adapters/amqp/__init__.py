"""RabbitMQ (AMQP 0-9-1) names, declarations and error mapping shared by agent and gateway."""
