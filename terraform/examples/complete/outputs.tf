output "key_arn" {
  description = "ARN of the customer's KMS key: pass it to `kmsbridge org add ORG --kms-key ARN`."
  value       = module.customer_key.key_arn
}

output "alias_arn" {
  description = "ARN of the customer key's alias."
  value       = module.customer_key.alias_arn
}

output "revoke_commands" {
  description = "AWS CLI commands that cut the platform off the customer's key."
  value       = module.customer_key.revoke_commands
}

output "table_name" {
  description = "Name of the key table (KMSBRIDGE_TABLE for the CLI)."
  value       = module.platform.table_name
}

output "operator_role_arn" {
  description = "The operator role: assume it to run `kmsbridge org add` and to submit jobs."
  value       = module.platform.operator_role_arn
}

output "decryptor_invoke_arn" {
  description = "ARN of the decryptor alias that the playback services invoke."
  value       = module.platform.decryptor_invoke_arn
}

output "jobs_queue_url" {
  description = "URL of the queue for bulk rewrap and export jobs (the operator role only)."
  value       = module.platform.jobs_queue_url
}

output "playback_bucket_name" {
  description = "Name of the bucket for short-lived plaintext playback copies."
  value       = module.platform.playback_bucket_name
}

output "platform_ca_key_arn" {
  description = "ARN of the platform CA key: `kmsbridge ca create --kms-key ARN`."
  value       = module.platform.platform_ca_key_arn
}

output "alarm_topic_arn" {
  description = "SNS topic of the platform's alarms: subscribe to it."
  value       = module.platform.alarm_topic_arn
}

output "alarms" {
  description = "Each alarm and what it means."
  value       = module.platform.alarms
}
