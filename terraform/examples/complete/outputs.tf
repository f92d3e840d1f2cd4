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

output "decryptor_function_name" {
  description = "Name of the decryptor function that the playback services invoke."
  value       = module.platform.decryptor_function_name
}

output "jobs_queue_url" {
  description = "URL of the queue for bulk rewrap and export jobs."
  value       = module.platform.jobs_queue_url
}

output "playback_bucket_name" {
  description = "Name of the bucket for short-lived plaintext playback copies."
  value       = module.platform.playback_bucket_name
}
