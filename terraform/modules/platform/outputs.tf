################################################################################
# For the customer-key module (each customer applies it in their own account)
################################################################################

output "platform_account_id" {
  description = "AWS account id of the platform: the customer-key module's platform_account_id."
  value       = local.account_id
}

output "decryptor_role_arn" {
  description = "ARN of the decryptor role: the customer-key module's decryptor_role_arn."
  value       = aws_iam_role.decryptor.arn
}

output "rotation_role_arn" {
  description = "ARN of the KEK rotation role: the customer-key module's rotation_role_arn."
  value       = aws_iam_role.rotation.arn
}

output "jobs_role_arn" {
  description = "ARN of the bulk rewrap and export role: the customer-key module's jobs_role_arn."
  value       = aws_iam_role.jobs.arn
}

################################################################################
# Key table
################################################################################

output "table_name" {
  description = "Name of the DynamoDB key table (KMSBRIDGE_TABLE for the CLI)."
  value       = aws_dynamodb_table.keks.name
}

output "table_arn" {
  description = "ARN of the DynamoDB key table."
  value       = aws_dynamodb_table.keks.arn
}

################################################################################
# Functions
################################################################################

output "decryptor_function_name" {
  description = "Name of the decryptor function, for the playback services' lambda:InvokeFunction calls."
  value       = aws_lambda_function.decryptor.function_name
}

output "decryptor_function_arn" {
  description = "ARN of the decryptor function."
  value       = aws_lambda_function.decryptor.arn
}

output "rotation_function_arn" {
  description = "ARN of the KEK rotation function."
  value       = aws_lambda_function.rotation.arn
}

output "rotation_schedule_arn" {
  description = "ARN of the EventBridge Scheduler schedule that runs KEK rotation."
  value       = aws_scheduler_schedule.rotation.arn
}

output "rotation_dead_letter_queue_url" {
  description = "URL of the queue that receives failed and undelivered rotation runs. Alarm on its depth."
  value       = aws_sqs_queue.rotation_dlq.url
}

output "jobs_function_arn" {
  description = "ARN of the jobs function (bulk rewrap and export)."
  value       = aws_lambda_function.jobs.arn
}

output "jobs_queue_url" {
  description = "URL of the jobs queue: bulk rewrap and export requests go here (KMSBRIDGE_JOBS_QUEUE_URL)."
  value       = aws_sqs_queue.jobs.url
}

output "jobs_queue_arn" {
  description = "ARN of the jobs queue, for the IAM policy of whoever submits jobs."
  value       = aws_sqs_queue.jobs.arn
}

output "jobs_dead_letter_queue_url" {
  description = "URL of the jobs dead-letter queue: messages that failed jobs_max_receive_count times. Alarm on its depth; redrive after fixing the cause."
  value       = aws_sqs_queue.jobs_dlq.url
}

output "log_group_names" {
  description = "CloudWatch log group of each function, by function role (decryptor, rotation, jobs)."
  value = {
    decryptor = aws_cloudwatch_log_group.decryptor.name
    rotation  = aws_cloudwatch_log_group.rotation.name
    jobs      = aws_cloudwatch_log_group.jobs.name
  }
}

################################################################################
# Playback and provisioning
################################################################################

output "playback_bucket_name" {
  description = "Name of the playback bucket (KMSBRIDGE_PLAYBACK_BUCKET)."
  value       = aws_s3_bucket.playback.id
}

output "playback_bucket_arn" {
  description = "ARN of the playback bucket."
  value       = aws_s3_bucket.playback.arn
}

output "provisioning_policy_json" {
  description = "IAM policy (JSON) for the operator role that runs `kmsbridge org add`, `kek import` and `kek rewrap` from the CLI: the key table and the customer keys of the served orgs, with the same org conditions as the functions. Has no statement while orgs is empty."
  value       = data.aws_iam_policy_document.provisioning.json
}
