package snsmsg

import "testing"

func TestDecode(t *testing.T) {
	n, err := Decode(`{"Type":"Notification","Subject":"[CRITICAL] r","Message":"{\"rule\":\"r\"}","MessageAttributes":{"severity":{"Type":"String","Value":"critical"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if n.Subject != "[CRITICAL] r" || n.Message != `{"rule":"r"}` || n.Attributes["severity"] != "critical" {
		t.Fatalf("decoded %+v", n)
	}
	if _, err := Decode(`not json`); err == nil {
		t.Fatal("a body that is no envelope was accepted")
	}
}
