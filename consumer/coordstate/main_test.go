package coordstate

import (
	"os"
	"testing"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m)) }
