package memory_test

import (
	"testing"

	"github.com/mlsengine/mlsengine/storage"
	"github.com/mlsengine/mlsengine/storage/memory"
	"github.com/mlsengine/mlsengine/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return memory.New() })
}

func TestConformanceZeroValue(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return new(memory.Backend) })
}
