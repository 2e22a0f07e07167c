"""Training: `zoo.finetune` (finetuning.py), LoRA adapters (lora.py), and
data / model parallelism (distribute.py; the torch DDP loop in torch_ddp.py)."""
