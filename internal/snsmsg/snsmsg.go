// Package snsmsg decodes what a queue subscribed to an SNS topic receives
// when raw delivery is off: the SNS envelope around the published message.
// The alert tests of sinks and lambda read alerts back through it.
package snsmsg

import (
	"encoding/json"
	"fmt"
)

// Notification is one SNS envelope: the subject, the published message and
// its message attributes' values.
type Notification struct {
	Subject    string
	Message    string
	Attributes map[string]string
}

// Decode reads an SQS message body holding an SNS envelope.
func Decode(body string) (Notification, error) {
	var env struct {
		Subject           string
		Message           string
		MessageAttributes map[string]struct{ Type, Value string }
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		return Notification{}, fmt.Errorf("queue body is not an SNS envelope: %w: %s", err, body)
	}
	n := Notification{Subject: env.Subject, Message: env.Message, Attributes: make(map[string]string, len(env.MessageAttributes))}
	for k, v := range env.MessageAttributes {
		n.Attributes[k] = v.Value
	}
	return n, nil
}
