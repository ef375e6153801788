import re,collections,math
def rows(bm,w): return 128 if bm==256 else 192 if w==3 else 256
def kseff(KB,k):
    k=min(k,8,max(KB//8,1)); k=max(k,1); kt=-(-KB//k); return -(-KB//kt)
def ksrule(N,K,m,bm,w,sms=132):
    B=-(-m//bm)*(-(-N//rows(bm,w)))
    return kseff(K//64, max(1,sms//max(B,1)))
C={(64,4):0.60,(64,3):0.648,(128,4):0.363,(128,3):0.392,(256,2):0.3305}
def cost(M,K,N,bm,w,tailsplit=True):
    ks=ksrule(N,K,M,bm,w); R=rows(bm,w); T=-(-M//bm)*(-(-N//R)); B=T*ks
    steps=math.ceil(K/64/ks)
    if ks==1 and tailsplit and T>132 and 0<T%132<=66: rounds=T//132+0.5
    else: rounds=math.ceil(B/132)
    return rounds*(R*bm*steps*64/1e6*C[(bm,w)]+1.0) + (0.54*ks*M*N*4/1e6 if ks>1 else 0)
cfg=None; d=collections.defaultdict(dict)
for line in open('bench/results/2026-12-03-h200-s22/call1/sweep.txt'):
    if line.startswith('== '): cfg=line[3:].strip(); continue
    m=re.match(r'(\w+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\|\s+([\d.]+).*\|\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)',line)
    if not m: continue
    p=cfg.split()
    if p[1]=='default': continue
    f=dict(x.split('=') for x in p[1:])
    if f['ks']!='0': continue
    M=int(m[4]); bm=(64 if M<=64 else 128 if M<=128 else 256) if f['bm']=='nat' else int(f['bm'])
    w=int(f['wgs']) if bm in (64,128) else 2
    d[(p[0],m[1],M,int(m[2]),int(m[3]))][(bm,w)]=float(m[9])
def cur(M,K,N):
    bm=64 if M<=64 else 128 if M<=128 else 256 if M<=256 else 128 if M<=384 else 256
    if bm in (64,128):
        return (bm,3) if M<=512 and cost(M,K,N,bm,3,False)<cost(M,K,N,bm,4,False) else (bm,4)
    if M>512: return (256,2)
    b0=-(-M//256)*(-(-N//128))*ksrule(N,K,M,256,2); b3=-(-M//128)*(-(-N//192))*ksrule(N,K,M,128,3)
    if b0>=132 or b3>132: return (256,2)
    return (128,3) if b3/132>=b0/132+0.05 else (256,2)
def new(M,K,N):
    if M<=128 or M>1024: return cur(M,K,N)
    c=[(128,3),(128,4),(256,2)]
    return min(c,key=lambda g:cost(M,K,N,*g))
tot=collections.Counter()
for k in sorted(d,key=lambda k:(k[0],k[1],k[2])):
    sh,l,M,K,N=k; v=d[k]
    if M<=128: continue
    o=cur(M,K,N); n=new(M,K,N)
    if o not in v or n not in v: print('missing',k,o,n,list(v)); continue
    best=min(v.values())
    tot['old']+=math.log(v[o]/best); tot['new']+=math.log(v[n]/best); tot['n']+=1
    print(k, 'cur',o,v[o],'new',n,v[n],'best',min(v,key=v.get),best, '*' if o!=n else '')
print({k:(math.exp(x/tot['n']) if k!='n' else x) for k,x in tot.items()})
