################################################################################
# Alarms: lost access, decryptor and rotation errors, dead letters
################################################################################

locals {
  alarm_topic_arn = var.alarm_topic_arn != null ? var.alarm_topic_arn : one(aws_sns_topic.alarms[*].arn)

  alarms = var.create_alarms ? merge(
    var.access_canary_schedule_expression == null ? {} : {
      access-revoked = {
        namespace  = "kmsbridge"
        metric     = "OrgAccessRevoked"
        dimensions = { Function = local.names.rotation }
        statistic  = "Maximum"
        period     = 3600
        meaning    = "The access canary found an org whose KMS key refuses the platform (disabled, pending deletion, policy or grant removed): its playback and exports fail with ACCESS_REVOKED. The org's settings item holds the last error and its time; a deliberate revocation by the customer looks the same."
      }
      access-unavailable = {
        namespace  = "kmsbridge"
        metric     = "OrgAccessUnavailable"
        dimensions = { Function = local.names.rotation }
        statistic  = "Maximum"
        period     = 3600
        meaning    = "The access canary could not reach an org's KMS key or the key table (throttled, network, region outage): playback of that org may fail with KMS_UNAVAILABLE or UNAVAILABLE."
      }
    },
    {
      decryptor-errors = {
        namespace  = "AWS/Lambda"
        metric     = "Errors"
        dimensions = { FunctionName = local.names.decryptor }
        statistic  = "Sum"
        period     = 300
        meaning    = "The decryptor crashed or timed out (refusals such as ACCESS_REVOKED are answers, not errors): playback requests fail with no kmsbridge error code."
      }
      rotation-errors = {
        namespace  = "AWS/Lambda"
        metric     = "Errors"
        dimensions = { FunctionName = local.names.rotation }
        statistic  = "Sum"
        period     = 300
        meaning    = "A rotation or access-canary run failed for at least one org (the run's log names them): a KEK may pass its cryptoperiod, or lost access may go unseen."
      }
      jobs-dead-letters = {
        namespace  = "AWS/SQS"
        metric     = "ApproximateNumberOfMessagesVisible"
        dimensions = { QueueName = local.names.jobs_dlq }
        statistic  = "Maximum"
        period     = 300
        meaning    = "A bulk rewrap or export message failed jobs_max_receive_count times and waits in the jobs dead-letter queue: fix the cause, then redrive it."
      }
      rotation-dead-letters = {
        namespace  = "AWS/SQS"
        metric     = "ApproximateNumberOfMessagesVisible"
        dimensions = { QueueName = local.names.rotation_dlq }
        statistic  = "Maximum"
        period     = 300
        meaning    = "A scheduled rotation or canary run could not be delivered or failed after its retries: rotation did not run."
      }
    },
  ) : {}
}

resource "aws_sns_topic" "alarms" {
  #checkov:skip=CKV_AWS_26:CloudWatch alarms cannot publish to a topic encrypted with the AWS managed SNS key, and the notifications carry alarm names and states only.
  count = var.create_alarms && var.alarm_topic_arn == null ? 1 : 0

  name = local.names.alarms
  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = each.value.meaning
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = each.value.period
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  # No data: no run, no error, no dead letter. A canary that stops running shows as
  # rotation-errors or rotation-dead-letters.
  treat_missing_data = "notBreaching"
  alarm_actions      = [local.alarm_topic_arn]
  ok_actions         = [local.alarm_topic_arn]
  tags               = var.tags
}
