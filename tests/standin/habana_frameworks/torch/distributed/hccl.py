from habana_frameworks import record

record("import hccl")
