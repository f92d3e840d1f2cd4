################################################################################
# For the customer-key module (each customer applies it in their own account). The
# role ARNs are built from the role names, so they are known at plan time; the key
# policies name them in aws:PrincipalArn conditions and need no role to exist first.
################################################################################

output "platform_account_id" {
  description = "AWS account id of the platform: the customer-key module's platform_account_id."
  value       = local.account_id
}

output "decryptor_role_arn" {
  description = "ARN of the decryptor role: the customer-key module's decryptor_role_arn."
  value       = local.role_arns.decryptor
  depends_on  = [aws_iam_role.decryptor]
}

output "rotation_role_arn" {
  description = "ARN of the KEK rotation (and access canary) role: the customer-key module's rotation_role_arn."
  value       = local.role_arns.rotation
  depends_on  = [aws_iam_role.rotation]
}

output "jobs_role_arn" {
  description = "ARN of the bulk rewrap and export role: the customer-key module's jobs_role_arn."
  value       = local.role_arns.jobs
  depends_on  = [aws_iam_role.jobs]
}

output "operator_role_arn" {
  description = "ARN of the operator role (created, or operator_role_arn): the customer-key module's operator_role_arns. Assume it to run `kmsbridge org add`, `kek import|rewrap` and to submit jobs."
  value       = local.operator_role_arn
  depends_on  = [aws_iam_role.operator]
}

output "lkm_role_arn" {
  description = "ARN of the LKM endpoint role (create_lkm), else null: the customer-key module's lkm_role_arn."
  value       = var.create_lkm ? local.role_arns.lkm : null
  depends_on  = [aws_iam_role.lkm]
}

output "role_names" {
  description = "Names of the roles the module creates, by role (decryptor, rotation, jobs, scheduler, and operator and lkm when created): for attaching policies of your own."
  value = merge(
    {
      decryptor = aws_iam_role.decryptor.name
      rotation  = aws_iam_role.rotation.name
      jobs      = aws_iam_role.jobs.name
      scheduler = aws_iam_role.scheduler.name
    },
    var.create_operator_role ? { operator = aws_iam_role.operator[0].name } : {},
    var.create_lkm ? { lkm = aws_iam_role.lkm[0].name } : {},
  )
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
  description = "Name of the decryptor function."
  value       = aws_lambda_function.decryptor.function_name
}

output "decryptor_function_arn" {
  description = "ARN of the decryptor function (unqualified)."
  value       = aws_lambda_function.decryptor.arn
}

output "decryptor_invoke_arn" {
  description = "ARN of the decryptor's alias: what the playback services invoke (lambda:InvokeFunction with this ARN as FunctionName). The playback roles may invoke only this alias."
  value       = aws_lambda_alias.decryptor.arn
}

output "rotation_function_arn" {
  description = "ARN of the KEK rotation and access canary function."
  value       = aws_lambda_function.rotation.arn
}

output "rotation_schedule_arn" {
  description = "ARN of the EventBridge Scheduler schedule that runs KEK rotation (disabled while orgs is empty)."
  value       = aws_scheduler_schedule.rotation.arn
}

output "access_canary_schedule_arn" {
  description = "ARN of the access canary's schedule, or null without one."
  value       = one(aws_scheduler_schedule.access_canary[*].arn)
}

output "rotation_dead_letter_queue_url" {
  description = "URL of the queue that receives failed and undelivered rotation and canary runs (alarm rotation-dead-letters)."
  value       = aws_sqs_queue.rotation_dlq.url
}

output "jobs_function_arn" {
  description = "ARN of the jobs function (bulk rewrap and export)."
  value       = aws_lambda_function.jobs.arn
}

output "jobs_queue_url" {
  description = "URL of the jobs queue: `--queue-url` of `kek rewrap --all-orgs` and `export --job`, run as the operator role (the only role the queue accepts messages from)."
  value       = aws_sqs_queue.jobs.url
}

output "jobs_queue_arn" {
  description = "ARN of the jobs queue."
  value       = aws_sqs_queue.jobs.arn
}

output "jobs_dead_letter_queue_url" {
  description = "URL of the jobs dead-letter queue: messages that failed jobs_max_receive_count times (alarm jobs-dead-letters); redrive after fixing the cause."
  value       = aws_sqs_queue.jobs_dlq.url
}

output "log_group_names" {
  description = "CloudWatch log group of each function, by function (decryptor, rotation, jobs, and lkm when created)."
  value       = { for function, group in aws_cloudwatch_log_group.this : function => group.name }
}

################################################################################
# Playback, operator, CA, LKM, alarms
################################################################################

output "playback_bucket_name" {
  description = "Name of the playback bucket (KMSBRIDGE_PLAYBACK_BUCKET)."
  value       = aws_s3_bucket.playback.id
}

output "playback_bucket_arn" {
  description = "ARN of the playback bucket."
  value       = aws_s3_bucket.playback.arn
}

output "operator_policy_json" {
  description = "The operator's IAM policy (JSON), attached to the created operator role; attach it to operator_role_arn yourself otherwise. The key table and per-org KEK wraps of the served orgs, Scan for `org list` and `--all-orgs`, sending jobs, export job records, signing with the platform CA."
  value       = data.aws_iam_policy_document.operator.json
}

output "platform_ca_key_arn" {
  description = "ARN of the platform CA key (create_platform_ca_key), else null: `kmsbridge ca create --kms-key ARN`."
  value       = one(aws_kms_key.platform_ca[*].arn)
}

output "lkm_endpoint_url" {
  description = "Base URL of the Genesys Cloud LKM endpoint (create_lkm), else null: the Local Key Manager URL to configure in Genesys Cloud."
  value       = one(aws_apigatewayv2_stage.lkm[*].invoke_url)
}

output "lkm_nonce_table_name" {
  description = "Name of the Hawk nonce table (create_lkm), else null."
  value       = one(aws_dynamodb_table.lkm_nonces[*].name)
}

output "alarm_topic_arn" {
  description = "ARN of the SNS topic the alarms notify (created or alarm_topic_arn), or null without alarms."
  value       = var.create_alarms ? local.alarm_topic_arn : null
}

output "alarms" {
  description = "Each CloudWatch alarm by name: its ARN and what it means when it fires."
  value = {
    for name, alarm in aws_cloudwatch_metric_alarm.this : name => {
      arn     = alarm.arn
      meaning = local.alarms[name].meaning
    }
  }
}
